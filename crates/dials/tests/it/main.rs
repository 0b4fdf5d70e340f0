//! The real `dials` binary, run as a user runs it: settings, first start, signals, exit codes.

#[path = "../../../dials-store/tests/it/aged.rs"]
mod aged;
mod architecture;
mod backup;
#[path = "../../../dials-server/tests/it/broker.rs"]
mod broker;
mod cli;
mod concurrency;
mod container;
mod crash;
#[path = "../../../dials-store/tests/it/disk.rs"]
mod disk;
mod harness;
mod junk;
mod last_will;
mod layers;
mod metadata;
mod metrics;
mod mqtt;
mod partition;
mod postgres;
mod process;
mod replicas;
mod resilience;
mod secrets;
mod seed;
mod serve;
#[path = "../../../dials-store/tests/it/throwaway.rs"]
mod throwaway;
