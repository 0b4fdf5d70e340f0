//! The real `dials` binary, run as a user runs it: settings, first start, signals, exit codes.

mod architecture;
#[path = "../../../dials-server/tests/it/broker.rs"]
mod broker;
mod concurrency;
mod metadata;
mod mqtt;
mod process;
mod secrets;
mod serve;
