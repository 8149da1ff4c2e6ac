//! CGI/1.1 (RFC 3875), the protocol half: what a request becomes for the
//! program (its meta-variables) and how the program's stdout becomes a
//! response head. Pure functions of bytes; running the program per request
//! is [`crate::app::cgi`]'s.

mod env;
mod head;

pub use env::{meta_variables, with_container_env};
pub use head::{HeadError, MAX_HEAD_BYTES, parse_head, preview, read_head};
