//! The operations behind the config routes: reading a service's current config through the
//! cache ([`read`]), the one write pipeline every change goes through ([`write`]), and the
//! layers of one instance: its override document and its effective config ([`layers`]).

mod batch;
mod layers;
mod read;
mod write;

pub use batch::*;
pub use layers::*;
pub use read::*;
pub use write::*;
