//! What the node installer changes on a host, as pure functions over text so
//! that every case is testable without a node.

pub mod containerd_config;
pub mod host;
pub mod node;
pub mod restart;
