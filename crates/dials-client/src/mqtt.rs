//! The broker connection: the contract's broker URL (`dials_wire::mqtt::BrokerUrl`) mapped to
//! rumqttc's options, and the two topics a service uses.
//!
//! The manager's crate has the same few lines of mapping (`dials-mqtt/src/connection.rs`): the
//! rules (schemes, ports, TLS, credentials) live once in `dials-wire`, and the client must not
//! depend on the manager's crate to share the rest. See ARCHITECTURE.md.

use std::time::Duration;

use dials_wire::mqtt::BrokerUrl;
use rumqttc::{MqttOptions, Transport};

/// Options for a clean session with `broker` under `client_id`: address, keep-alive,
/// credentials and TLS (the system's roots, or `ca_pem`).
pub(crate) fn options(broker: &BrokerUrl, client_id: String, ca_pem: Option<&[u8]>) -> MqttOptions {
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

/// The topics one instance of one service uses.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub updated: String,
    pub applied: String,
}

impl Topics {
    pub fn new(prefix: &str, service: &str, instance: &str) -> Self {
        let topics = dials_wire::mqtt::Topics::new(prefix);
        Self {
            updated: topics.updated(service),
            applied: topics.applied(service, instance),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_the_address_and_credentials_of_the_url() {
        let url = BrokerUrl::parse("mqtts://svc:p%40ss@broker.lan").unwrap();
        let o = options(&url, "id".into(), None);
        assert_eq!(o.broker_address(), ("broker.lan".to_owned(), 8883));
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("svc", "p@ss")
        );
        assert!(o.clean_session());
        assert!(matches!(o.transport(), Transport::Tls(_)));
    }
}
