//! The operations behind the config routes: reading a service's current config through the
//! cache ([`read`]), the one write pipeline every change goes through ([`write`]), and whose
//! turn it is to write a service ([`turns`]).

mod batch;
mod read;
mod turns;
mod write;

pub use batch::*;
pub use read::*;
pub use turns::*;
pub use write::*;
