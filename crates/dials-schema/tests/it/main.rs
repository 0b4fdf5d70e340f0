//! Integration tests for dials-schema, mostly against the TARS fleet fixtures in
//! `examples/tars` (seven real-world service schemas, example configs, invalid documents).

mod catalogue;
mod compile;
mod defaults;
mod hostile;
mod migration;
mod search;
mod support;
mod validation;
