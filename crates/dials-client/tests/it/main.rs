//! The client against the real manager and a real Mosquitto: each test starts its own broker
//! (on a free port) and manager (fresh data dir), then drives a client as a service would.

#[path = "../../../dials-server/tests/it/broker.rs"]
mod broker;
mod helpers;
#[path = "../../../dials/tests/it/metadata.rs"]
mod metadata;
#[path = "../../examples/echo-service/tts_config.rs"]
mod tts_config;

mod boundaries;
mod demo;
mod envelopes;
mod homeassistant;
mod layers;
mod live;
mod presence;
mod rotation;
mod startup;
mod vectors;
