//! The in-process broker (rumqttd): MQTT 3.1.1 with retained messages and QoS 1, for a machine
//! with no broker of its own. Its retained messages live in memory only, which is why the
//! publisher republishes every service's latest envelope after each (re)connect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

/// Why the in-process broker could not start.
#[derive(Debug, thiserror::Error)]
#[error("the in-process MQTT broker could not start on {addr}: {reason}")]
pub struct EmbeddedError {
    /// Where it was asked to listen.
    pub addr: SocketAddr,
    /// Why it failed.
    pub reason: String,
}

/// Starts the broker on `addr` in its own threads and waits until it accepts connections.
/// It runs until the process ends.
pub async fn start(addr: SocketAddr) -> Result<(), EmbeddedError> {
    let fail = |reason: String| EmbeddedError { addr, reason };
    // Fail fast and clearly when the port is taken, rather than in the broker's own thread.
    std::net::TcpListener::bind(addr).map_err(|e| fail(e.to_string()))?;
    let config: rumqttd::Config = serde_json::from_value(json!({
        "id": 0,
        "router": {
            "id": 0,
            "max_connections": 10010,
            "max_outgoing_packet_count": 200,
            "max_segment_size": 104857600,
            "max_segment_count": 10
        },
        "v4": {
            "1": {
                "name": "dials-v4",
                "listen": addr.to_string(),
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60000,
                    "max_payload_size": 1048576 + 65536,
                    "max_inflight_count": 1000,
                    "dynamic_filters": true
                }
            }
        }
    }))
    .map_err(|e| fail(format!("bad broker configuration: {e}")))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the in-process MQTT broker stopped");
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(fail("it did not accept connections within 5 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
