//! The server driven over real HTTP: each test builds the real application on port 0 with a
//! fresh data directory and talks to it as a user would.

mod broker;
mod helpers;

mod auth;
mod concurrency;
mod config;
mod errors;
mod history;
mod hostile;
mod hostile_broker;
mod instances;
mod lifecycle;
mod mqtt;
mod openapi;
mod problems;
mod profiles;
mod races;
mod schema;
mod secrets;
mod security;
mod ui;
mod watch;
