//! dials over MQTT.
//!
//! - [`BrokerSetting`]: what `--mqtt` says (`auto`, `embedded[:ADDR]`, `mqtt://…`, `mqtts://…`,
//!   `none`), and [`resolve`], which turns `auto` into a concrete choice by probing.
//! - [`embedded`]: the in-process broker used when no broker is at hand.
//! - [`Publisher`]: the background task that drains the store's outbox, publishing each
//!   committed change as a signed retained envelope in version order, marking rows sent only
//!   after the broker's PUBACK, and recording what instances report on `config/applied/+/+`.

pub mod embedded;
mod publisher;
mod setting;
mod topics;

pub use publisher::{BrokerState, Publisher, PublisherConfig, PublisherHandle};
pub use setting::{BrokerChoice, BrokerSetting, ExternalBroker, SettingError, resolve, resolve_at};
pub use topics::Topics;
