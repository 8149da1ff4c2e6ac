//! Shared by the integration suites.
#![allow(dead_code)]

pub mod containerd;
pub mod docker;
pub mod eventually;
pub mod grpc;
pub mod harness;
pub mod http;
pub mod images;
pub mod limits;
pub mod platform;
pub mod redis;
pub mod registry;
pub mod served;
