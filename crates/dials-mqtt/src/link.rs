//! The publishing connection: MQTT 3.1.1, publish-only, every packet that is ready written at
//! once.
//!
//! rumqttc's event loop writes and flushes each request on its own, and hands each over through
//! two channels and a task of its own. Under concurrent writers the publisher has dozens of
//! packets ready at a time (an envelope and an audit event per commit): written one by one,
//! each is a system call and a TCP segment of its own, which on loopback also runs the broker's
//! receive path on the manager's core. Here the publisher task encodes what is ready into one
//! buffer and writes it with one call ([`Sender::flush`]); it numbers each publish itself, so
//! no event comes back for it.
//!
//! The packets are rumqttc's (`mqttbytes::v4`), so the encoding is the one the subscribing
//! connection (still a rumqttc client) and the client library use. This module owns only the
//! connection: TCP or TLS, CONNECT with the last will, reading the broker's acknowledgements.
//! A driver task connects, hands the publisher a [`Sender`] for the new connection, reads
//! PUBACKs until the connection ends, reports why, and connects again after a backoff. A
//! connection is never dropped half made: the driver is not cancelled while it connects, so
//! the broker never sees a manager that vanished after CONNECT (which would publish its last
//! will).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dials_wire::mqtt::BrokerUrl;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Disconnect, LastWill, Login, Packet, PingReq, Publish,
};
use rumqttc::mqttbytes::{Error as PacketError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// How long connecting (TCP, TLS, CONNECT to CONNACK) or one write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds, of both the manager's connections.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where and as whom the publishing connection connects.
#[derive(Debug, Clone)]
pub(crate) struct LinkOptions {
    pub broker: BrokerUrl,
    pub client_id: String,
    /// The keep-alive agreed with the broker: the publisher pings at least this often, and a
    /// broker silent for twice as long is taken for gone.
    pub keep_alive: Duration,
    /// Published by the broker, retained at QoS 1, should the manager vanish: (topic, payload).
    pub last_will: (String, Vec<u8>),
    /// PEM of the CA to trust for TLS instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The largest packet the broker may send us or we send it.
    pub max_packet: usize,
}

/// What the driver tells the publisher, in the order it happened.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// Connected (the broker accepted CONNECT): publish through this.
    Up(Sender),
    /// The broker acknowledged the publish numbered so.
    PubAck(u16),
    /// The connection ended, or could not be made, and why; the driver connects again.
    Down(String),
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type Io = Box<dyn Stream>;

/// The writing half of one connection. Packets are encoded as they are handed over and written
/// together by [`Sender::flush`]. Dropping it ends the connection.
pub(crate) struct Sender {
    io: WriteHalf<Io>,
    buf: BytesMut,
    next_pkid: u16,
    max_packet: usize,
    /// Tells the driver to drop the connection.
    closed: Arc<Notify>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("buffered", &self.buf.len())
            .field("next_pkid", &self.next_pkid)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Encodes a QoS 1 publish and answers its packet id; it goes out at the next flush.
    /// Refuses a packet larger than the broker takes.
    pub fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<u16, String> {
        let pkid = self.next_pkid;
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
        publish.retain = retain;
        publish.pkid = pkid;
        if publish.size() > self.max_packet {
            return Err(format!(
                "a message of {} bytes is larger than the broker takes ({} bytes)",
                publish.size(),
                self.max_packet
            ));
        }
        publish.write(&mut self.buf).map_err(|e| e.to_string())?;
        // Ids go round 1..=65535; at most the publisher's window is unacknowledged at once, so
        // an id comes back only long after its PUBACK.
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        Ok(pkid)
    }

    /// Encodes a PINGREQ: the broker answers it, which tells the driver the broker is there.
    pub fn ping(&mut self) {
        let _ = PingReq.write(&mut self.buf);
    }

    /// Encodes a DISCONNECT: the broker closes the connection without its last will.
    pub fn disconnect(&mut self) {
        let _ = Disconnect.write(&mut self.buf);
    }

    /// Writes what was encoded, in one write where the socket takes it. An error (or a broker
    /// that takes nothing for [`IO_TIMEOUT`]) means the connection is gone.
    pub async fn flush(&mut self) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(IO_TIMEOUT, async {
            self.io.write_all(&self.buf).await?;
            self.io.flush().await
        })
        .await;
        self.buf.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing to the MQTT broker failed: {e}")),
            Err(_) => Err(format!(
                "the MQTT broker took nothing for {} s",
                IO_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.closed.notify_one();
    }
}

/// Starts the driver: it connects, reports, reads, and connects again, until the receiver is
/// dropped (or the task aborted).
pub(crate) fn spawn(options: LinkOptions) -> (mpsc::Receiver<LinkEvent>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let closed = Arc::new(Notify::new());
            let why = match tokio::time::timeout(IO_TIMEOUT, connect(&options)).await {
                Ok(Ok((read, write, pending))) => {
                    backoff = BACKOFF_MIN;
                    let sender = Sender {
                        io: write,
                        buf: BytesMut::with_capacity(64 * 1024),
                        next_pkid: 1,
                        max_packet: options.max_packet,
                        closed: closed.clone(),
                    };
                    if tx.send(LinkEvent::Up(sender)).await.is_err() {
                        return;
                    }
                    let silence = options.keep_alive * 2;
                    read_acks(read, pending, &tx, &closed, silence, options.max_packet).await
                }
                Ok(Err(why)) => why,
                Err(_) => "connecting to the MQTT broker timed out".into(),
            };
            if tx.send(LinkEvent::Down(why)).await.is_err() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
    (rx, task)
}

/// TCP (or TLS), CONNECT, CONNACK. Answers the two halves and what was read past the CONNACK.
async fn connect(o: &LinkOptions) -> Result<(ReadHalf<Io>, WriteHalf<Io>, BytesMut), String> {
    let host = o.broker.host.as_str();
    let tcp = TcpStream::connect((host, o.broker.port))
        .await
        .map_err(|e| {
            format!(
                "cannot reach the MQTT broker at {host}:{}: {e}",
                o.broker.port
            )
        })?;
    // Without it a publish written while a PUBACK is unanswered waits for the broker's delayed
    // ACK (Nagle's algorithm).
    tcp.set_nodelay(true)
        .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
    let mut io: Io = if o.broker.tls {
        Box::new(tls(tcp, host, o.ca_pem.as_deref()).await?)
    } else {
        Box::new(tcp)
    };
    let mut connect = rumqttc::mqttbytes::v4::Connect::new(o.client_id.clone());
    connect.keep_alive = u16::try_from(o.keep_alive.as_secs()).unwrap_or(u16::MAX);
    connect.clean_session = true;
    connect.last_will = Some(LastWill::new(
        o.last_will.0.clone(),
        o.last_will.1.clone(),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(c) = &o.broker.credentials {
        connect.login = Some(Login::new(c.user.clone(), c.password.clone()));
    }
    let mut out = BytesMut::new();
    connect.write(&mut out).map_err(|e| e.to_string())?;
    io.write_all(&out)
        .await
        .map_err(|e| format!("writing to the MQTT broker failed: {e}"))?;
    let mut read = BytesMut::with_capacity(4096);
    loop {
        match Packet::read(&mut read, o.max_packet) {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => break,
            Ok(Packet::ConnAck(ack)) => {
                return Err(format!(
                    "the MQTT broker refused the connection: {}",
                    refusal(ack.code)
                ));
            }
            Ok(other) => {
                return Err(format!(
                    "the MQTT broker answered CONNECT with {other:?} instead of CONNACK"
                ));
            }
            Err(PacketError::InsufficientBytes(_)) => {
                let n = io
                    .read_buf(&mut read)
                    .await
                    .map_err(|e| format!("reading from the MQTT broker failed: {e}"))?;
                if n == 0 {
                    return Err("the MQTT broker closed the connection".into());
                }
            }
            Err(e) => return Err(format!("the MQTT broker sent a malformed packet: {e}")),
        }
    }
    let (r, w) = tokio::io::split(io);
    Ok((r, w, read))
}

/// The broker's reason, in words.
fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => "it does not speak MQTT 3.1.1",
        ConnectReturnCode::BadClientId => "the client id was rejected",
        ConnectReturnCode::ServiceUnavailable => "the broker is unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => {
            "not authorized (check the user name and password in the broker URL)"
        }
    }
}

/// TLS over `tcp`, trusting `ca_pem` or else the system's roots.
async fn tls(
    tcp: TcpStream,
    host: &str,
    ca_pem: Option<&[u8]>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    // The ring provider keeps the build free of C toolchains; installing twice is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the MQTT CA is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the MQTT CA is not usable: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a name TLS can check: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with the MQTT broker failed: {e}"))
}

/// Reads the broker's packets and reports each PUBACK, until the connection ends, the
/// publisher drops its [`Sender`], or the broker is silent for `silence`. Answers why it ended.
async fn read_acks(
    mut io: ReadHalf<Io>,
    mut buf: BytesMut,
    tx: &mpsc::Sender<LinkEvent>,
    closed: &Notify,
    silence: Duration,
    max_packet: usize,
) -> String {
    loop {
        // Every whole packet already read first.
        loop {
            match Packet::read(&mut buf, max_packet) {
                Ok(Packet::PubAck(ack)) => {
                    if tx.send(LinkEvent::PubAck(ack.pkid)).await.is_err() {
                        return "the publisher stopped".into();
                    }
                }
                // PINGRESP, and anything else a publish-only connection has no use for.
                Ok(_) => {}
                Err(PacketError::InsufficientBytes(_)) => break,
                Err(e) => return format!("the MQTT broker sent a malformed packet: {e}"),
            }
        }
        buf.reserve(4096);
        tokio::select! {
            read = tokio::time::timeout(silence, io.read_buf(&mut buf)) => match read {
                Ok(Ok(0)) => return "the MQTT broker closed the connection".into(),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("reading from the MQTT broker failed: {e}"),
                Err(_) => {
                    return format!(
                        "the MQTT broker did not answer for {} s",
                        silence.as_secs()
                    );
                }
            },
            () = closed.notified() => return "the connection was closed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_broker::Mosquitto;

    fn options(port: u16, keep_alive: Duration) -> LinkOptions {
        LinkOptions {
            broker: BrokerUrl::plain("127.0.0.1", port),
            client_id: "link-test".into(),
            keep_alive,
            last_will: ("dials/test/health".into(), b"{\"ok\":false}".to_vec()),
            ca_pem: None,
            max_packet: 64 * 1024,
        }
    }

    async fn next(events: &mut mpsc::Receiver<LinkEvent>, within: Duration) -> LinkEvent {
        tokio::time::timeout(within, events.recv())
            .await
            .expect("an event in time")
            .expect("the driver runs")
    }

    async fn up(events: &mut mpsc::Receiver<LinkEvent>) -> Sender {
        match next(events, Duration::from_secs(10)).await {
            LinkEvent::Up(sender) => sender,
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn many_publishes_written_at_once_are_each_acknowledged_by_their_number() {
        let broker = Mosquitto::start_stock().await;
        let (mut events, driver) = spawn(options(broker.port, Duration::from_secs(15)));
        let mut sender = up(&mut events).await;
        let ids: Vec<u16> = (0..300)
            .map(|i| {
                sender
                    .publish(format!("dials/test/{i}"), vec![b'x'; 1024], i % 2 == 0)
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, (1..=300).collect::<Vec<u16>>(), "numbered in order");
        sender.flush().await.unwrap();
        let mut acked = Vec::new();
        while acked.len() < ids.len() {
            match next(&mut events, Duration::from_secs(10)).await {
                LinkEvent::PubAck(pkid) => acked.push(pkid),
                other => panic!("expected acknowledgements, got {other:?}"),
            }
        }
        acked.sort_unstable();
        assert_eq!(acked, ids);
        // Too large for the broker: refused here, and the connection goes on.
        let refused = sender.publish("dials/test/big".into(), vec![0; 70 * 1024], true);
        assert!(
            refused
                .unwrap_err()
                .contains("larger than the broker takes")
        );
        assert_eq!(
            sender.publish("dials/test/after".into(), vec![1], false),
            Ok(301)
        );
        driver.abort();
    }

    #[tokio::test]
    async fn packet_ids_go_round_without_zero() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let (_, write) = tokio::io::split(Box::new(ours) as Io);
        let mut sender = Sender {
            io: write,
            buf: BytesMut::new(),
            next_pkid: u16::MAX - 1,
            max_packet: 1024,
            closed: Arc::new(Notify::new()),
        };
        let ids: Vec<u16> = (0..3)
            .map(|_| sender.publish("t".into(), vec![7], true).unwrap())
            .collect();
        assert_eq!(ids, [u16::MAX - 1, u16::MAX, 1]);
        sender.flush().await.unwrap();
        let mut read = BytesMut::new();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            theirs.read_buf(&mut read).await.unwrap();
            while let Ok(packet) = Packet::read(&mut read, 1024) {
                match packet {
                    Packet::Publish(p) => {
                        assert!(p.retain && p.qos == QoS::AtLeastOnce && p.payload[..] == [7]);
                        seen.push(p.pkid);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(seen, ids, "written in the order handed over");
    }

    #[tokio::test]
    async fn a_broker_that_stops_answering_is_left_and_reconnected_once_it_is_back() {
        let broker = Mosquitto::start_stock().await;
        let (mut events, driver) = spawn(options(broker.port, Duration::from_secs(1)));
        let mut sender = up(&mut events).await;
        broker.pause();
        // The publisher pings every keep-alive; nothing answers.
        sender.ping();
        sender.flush().await.unwrap();
        match next(&mut events, Duration::from_secs(5)).await {
            LinkEvent::Down(why) => assert!(why.contains("did not answer"), "{why}"),
            other => panic!("expected the connection to be left, got {other:?}"),
        }
        drop(sender);
        broker.resume();
        loop {
            match next(&mut events, Duration::from_secs(20)).await {
                LinkEvent::Up(_) => break,
                LinkEvent::Down(_) => {}
                LinkEvent::PubAck(pkid) => panic!("a stray PUBACK {pkid}"),
            }
        }
        driver.abort();
    }
}
