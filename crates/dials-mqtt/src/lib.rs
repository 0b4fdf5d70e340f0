//! dials over MQTT.
//!
//! - [`BrokerSetting`]: what `--mqtt` says (`auto`, `embedded[:ADDR]`, `mqtt://…`, `mqtts://…`,
//!   `none`), and [`resolve`], which turns `auto` into a concrete choice by probing.
//! - [`embedded`]: the in-process broker used when no broker is at hand.
//! - [`Publisher`]: the background task that drains the store's outbox, publishing each
//!   committed change as a signed retained envelope in version order on one connection,
//!   marking rows sent only after the broker's PUBACK, receiving on a second connection (so that
//!   no message for the manager waits behind a PUBACK; see `publisher`), repairing its retained topics when another client overwrites
//!   them (module `repair`), and recording what instances report on
//!   `config/applied/+/+` under a budget of their own (module `reports`).
//!
//! Topic names, payloads and the broker URL are the contract's, in `dials_wire::mqtt`; this
//! crate only moves them. `connection` maps a broker URL to rumqttc's options.

mod connection;
pub mod embedded;
mod link;
mod metrics;
mod publisher;
mod repair;
mod reports;
mod setting;
/// A real Mosquitto for the tests, the one the other crates' suites use.
#[cfg(test)]
#[path = "../../dials-server/tests/it/broker.rs"]
mod test_broker;
mod window;

pub use connection::options as broker_options;
pub use dials_wire::mqtt::{BrokerUrl, Topics};
pub use publisher::{BrokerState, Publisher, PublisherConfig, PublisherHandle};
pub use reports::{MAX_INSTANCES_PER_SERVICE, ReportCounters, STALE_AFTER};
pub use setting::{BrokerChoice, BrokerSetting, SettingError, resolve, resolve_at};
