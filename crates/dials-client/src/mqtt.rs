//! The broker connection: the contract's broker URL (`dials_wire::mqtt::BrokerUrl`) mapped to
//! rumqttc's options, the topics a service uses, and the order in which updates are
//! acknowledged around the applied report (`AckOrder`).
//!
//! The manager's crate has the same few lines of mapping (`dials-mqtt/src/connection.rs`): the
//! rules (schemes, ports, TLS, credentials) live once in `dials-wire`, and the client must not
//! depend on the manager's crate to share the rest. See ARCHITECTURE.md.

use std::collections::VecDeque;
use std::time::Duration;

use dials_wire::mqtt::BrokerUrl;
use rumqttc::{MqttOptions, Transport};

/// Options for a clean session with `broker` under `client_id`: address, keep-alive,
/// credentials and TLS (the system's roots, or `ca_pem`).
pub(crate) fn options(broker: &BrokerUrl, client_id: String, ca_pem: Option<&[u8]>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options
        .set_keep_alive(Duration::from_secs(15))
        .set_clean_session(true)
        // Updates are acknowledged by the driver, in the order `AckOrder` gives.
        .set_manual_acks(true);
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
    /// `global`'s envelopes (subscribed only when the schema takes keys from global).
    pub global: String,
    /// This instance's override envelopes.
    pub instance_override: String,
    pub applied: String,
    /// The manager's retained chain of signing-key rotation statements.
    pub keys: String,
}

impl Topics {
    pub fn new(prefix: &str, service: &str, instance: &str) -> Self {
        let topics = dials_wire::mqtt::Topics::new(prefix);
        Self {
            updated: topics.updated(service),
            global: topics.updated(dials_domain::ServiceName::GLOBAL),
            instance_override: topics.instance_override(service, instance),
            applied: topics.applied(service, instance),
            keys: topics.keys(),
        }
    }
}

/// When to acknowledge updates (PUBACK) and when to publish the applied report, so that the
/// broker never sits on a small segment toward this client that the client's kernel has not
/// acknowledged.
///
/// A broker as distributions install it (Mosquitto without `set_tcp_nodelay`) sends with
/// Nagle's algorithm: a small write waits while an earlier small segment is unacknowledged.
/// Each applied report (QoS 1) draws a PUBACK from the broker; if the client then has nothing
/// to send, its kernel delays the TCP acknowledgement of that PUBACK (up to 40 ms on Linux),
/// and the next update waits behind it in the broker's socket. So the client always has
/// something to send right after that PUBACK arrives: the acknowledgement of the last update,
/// held until then. One report is in flight at a time; a newer outcome waiting meanwhile
/// replaces an older one (the retained topic keeps only the latest, and the manager records
/// the newest per instance), and goes out when the PUBACK comes, itself carrying the TCP
/// acknowledgement.
#[derive(Debug)]
pub(crate) struct AckOrder<P> {
    /// Updates received and not acknowledged yet, oldest first.
    held: VecDeque<P>,
    /// A report was published and its PUBACK has not come.
    report_in_flight: bool,
}

impl<P> Default for AckOrder<P> {
    fn default() -> Self {
        Self {
            held: VecDeque::new(),
            report_in_flight: false,
        }
    }
}

impl<P> AckOrder<P> {
    /// A new connection (clean session): nothing is in flight and old packet ids mean nothing.
    pub fn reset(&mut self) {
        self.held.clear();
        self.report_in_flight = false;
    }

    /// An incoming QoS 1 publish, to acknowledge when `release` says.
    pub fn received(&mut self, publish: P) {
        self.held.push_back(publish);
    }

    /// Whether a report may be published now.
    pub fn may_report(&self) -> bool {
        !self.report_in_flight
    }

    /// A report was handed to the connection.
    pub fn report_sent(&mut self) {
        self.report_in_flight = true;
    }

    /// The broker acknowledged the report.
    pub fn report_acked(&mut self) {
        self.report_in_flight = false;
    }

    /// The acknowledgements to send now, in the order the updates came: all of them, except
    /// the newest while a report is in flight — it is what follows that report's PUBACK.
    pub fn release(&mut self) -> impl Iterator<Item = P> + '_ {
        let keep = usize::from(self.report_in_flight).min(self.held.len());
        let n = self.held.len() - keep;
        self.held.drain(..n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(order: &mut AckOrder<u16>) -> Vec<u16> {
        order.release().collect()
    }

    #[test]
    fn an_update_is_acknowledged_after_its_reports_puback_not_before() {
        let mut order = AckOrder::default();
        order.received(1);
        assert!(order.may_report());
        order.report_sent();
        assert_eq!(
            released(&mut order),
            Vec::<u16>::new(),
            "held for the PUBACK"
        );
        order.report_acked();
        assert_eq!(released(&mut order), vec![1]);
        assert_eq!(released(&mut order), Vec::<u16>::new());
    }

    #[test]
    fn an_update_without_a_report_is_acknowledged_at_once() {
        let mut order = AckOrder::default();
        order.received(7);
        assert_eq!(released(&mut order), vec![7]);
    }

    #[test]
    fn updates_during_a_report_wait_for_one_report_at_a_time_and_keep_their_order() {
        let mut order = AckOrder::default();
        order.received(1);
        order.report_sent();
        assert!(released(&mut order).is_empty());
        // Two more updates arrive while the first report is in flight.
        order.received(2);
        order.received(3);
        assert!(!order.may_report(), "one report in flight at a time");
        assert_eq!(released(&mut order), vec![1, 2], "the newest stays held");
        // Its PUBACK: the newer report goes out, and the newest update still waits for it.
        order.report_acked();
        assert!(order.may_report());
        order.report_sent();
        assert!(released(&mut order).is_empty());
        order.report_acked();
        assert_eq!(released(&mut order), vec![3]);
    }

    #[test]
    fn a_new_connection_forgets_what_the_old_one_held() {
        let mut order = AckOrder::default();
        order.received(1);
        order.report_sent();
        order.reset();
        assert!(order.may_report());
        assert!(released(&mut order).is_empty());
    }

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
        assert!(
            o.manual_acks(),
            "the driver acknowledges updates in its own order"
        );
        assert!(matches!(o.transport(), Transport::Tls(_)));
    }
}
