//! The operations behind the config routes: reading a service's current config through the
//! cache ([`read`]), the one write pipeline every change goes through ([`write`]), whose turn
//! it is to write a service ([`turns`]), and the layers of one instance: its override document
//! and its effective config ([`layers`]).

mod batch;
mod layers;
mod read;
mod turns;
mod write;

pub use batch::*;
pub use layers::*;
pub use read::*;
pub use turns::*;
pub use write::*;
