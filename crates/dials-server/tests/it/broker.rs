//! A real Mosquitto, started by the test on a free port, and an MQTT subscriber that collects
//! what it receives. Shared by the server suite, the binary and client suites, and the unit
//! tests of `dials-mqtt`'s publishing connection.
#![allow(dead_code, reason = "shared by two test suites; each uses a part")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra configuration lines (TLS, passwords).
    extra: String,
    /// Only a listener and anonymous access: the broker's sockets keep Nagle's algorithm.
    stock: bool,
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            extra: String::new(),
            stock: false,
        };
        m.restart().await;
        m
    }

    /// A broker configured as a distribution installs it: a listener and anonymous access,
    /// nothing tuned (no `set_tcp_nodelay`, default inflight and queue limits).
    pub async fn start_stock() -> Mosquitto {
        let mut m = Mosquitto {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: String::new(),
            stock: true,
        };
        m.restart().await;
        m
    }

    /// A broker that speaks only TLS (certificate for 127.0.0.1 and localhost, signed by the
    /// returned CA) and only to `user` with `password`.
    pub async fn start_tls(user: &str, password: &str) -> (Mosquitto, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = std::process::Command::new(args[0])
                .args(&args[1..])
                .current_dir(d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["openssl", "req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=dials test CA",
            ],
        ]
        .concat());
        run(&[
            &["openssl", "req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        run(&["mosquitto_passwd", "-c", "-b", "passwd", user, password]);
        let extra = format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\npassword_file {0}/passwd\n",
            d.display()
        );
        let ca = d.join("ca.pem");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            extra,
            stock: false,
        };
        m.restart().await;
        (m, ca)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// (Re)starts the broker on the same port; it forgets retained messages.
    pub async fn restart(&mut self) {
        let conf: PathBuf = self.dir.path().join("mosquitto.conf");
        let text = if self.stock {
            format!("listener {} 127.0.0.1\nallow_anonymous true\n", self.port)
        } else {
            format!(
                "listener {} 127.0.0.1\nallow_anonymous {}\npersistence false\nuser root\n\
                 max_inflight_messages 0\nset_tcp_nodelay true\nmax_queued_messages 100000\n{}",
                self.port,
                self.extra.is_empty(),
                self.extra
            )
        };
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto is installed (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.addr()).await;
    }

    /// Freezes the broker (SIGSTOP): its connections stay open and nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("the broker runs");
        let ok = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {pid}");
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
            let _ = child.wait().await;
        }
    }
}

async fn wait_for_port(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker on {addr} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// A subscriber on `filter`; messages arrive on the returned channel.
pub struct Subscriber {
    pub messages: mpsc::UnboundedReceiver<Message>,
    pub client: AsyncClient,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn connect(addr: SocketAddr, filter: &str) -> Subscriber {
        let id = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let (tx, messages) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .unwrap()
            .unwrap();
        Subscriber {
            messages,
            client,
            _task: task,
        }
    }

    /// The next message, failing the test after `secs` seconds.
    pub async fn next(&mut self, secs: u64) -> Message {
        tokio::time::timeout(Duration::from_secs(secs), self.messages.recv())
            .await
            .unwrap_or_else(|_| panic!("no message within {secs} s"))
            .expect("subscriber alive")
    }

    /// The next message on `topic`, skipping others.
    pub async fn next_on(&mut self, topic: &str, secs: u64) -> Message {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = tokio::time::timeout(left, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("nothing on {topic} within {secs} s"))
                .expect("subscriber alive");
            if m.topic == topic {
                return m;
            }
        }
    }
}
