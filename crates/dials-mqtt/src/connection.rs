//! The broker URL of the contract (`dials_wire::mqtt::BrokerUrl`) mapped to rumqttc's options.
//!
//! The client library has the same few lines (`dials-client/src/mqtt.rs`): the rules (schemes,
//! ports, TLS, credentials) live once in `dials-wire`; what is left here is only the mapping to
//! rumqttc, which `dials-wire` may not depend on and which the client may not reach in this
//! crate (it would pull in the server's store). See ARCHITECTURE.md.

use std::time::Duration;

use dials_wire::mqtt::BrokerUrl;
use rumqttc::{MqttOptions, Transport};

/// Options for a clean session with `broker` under `client_id`: address, keep-alive,
/// credentials and TLS (the system's roots, or `ca_pem`).
pub fn options(broker: &BrokerUrl, client_id: String, ca_pem: Option<&[u8]>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options
        .set_keep_alive(Duration::from_secs(15))
        .set_clean_session(true);
    if let Some(c) = &broker.credentials {
        options.set_credentials(c.user.clone(), c.password.clone());
    }
    if broker.tls {
        // The ring provider keeps the build free of C toolchains; installing twice is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        options.set_transport(match ca_pem {
            Some(ca) => Transport::tls(ca.to_vec(), None, None),
            None => Transport::tls_with_default_config(),
        });
    }
    options
}
