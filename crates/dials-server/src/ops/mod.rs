//! The operations behind the config routes: reading a service's current config through the
//! cache ([`read`]), and the one write pipeline every change goes through ([`write`]).

mod batch;
mod read;
mod write;

pub use batch::*;
pub use read::*;
pub use write::*;
