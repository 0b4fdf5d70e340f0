//! The real `dials` binary, run as a user runs it: settings, first start, signals, exit codes.

mod process;
mod serve;
