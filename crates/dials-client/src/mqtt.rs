//! The broker connection's settings: `mqtt://[user:pass@]host[:port]` or `mqtts://…`, and the
//! topics a service uses.

use std::time::Duration;

use rumqttc::{MqttOptions, Transport};

/// Where and how to reach the broker.
#[derive(Clone)]
pub(crate) struct BrokerUrl {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl BrokerUrl {
    /// Parses `mqtt://[user:pass@]host[:port]` (port 1883) or `mqtts://…` (port 8883).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim())
            .map_err(|e| format!("{raw:?} is not a URL ({e}); expected mqtt://host:port"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "unknown scheme {other:?}; expected mqtt://host:port or mqtts://host:port"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{raw:?} names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        let credentials = (!url.username().is_empty()).then(|| {
            (
                decode(url.username()),
                url.password().map(decode).unwrap_or_default(),
            )
        });
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }

    /// The URL without its password, for logs.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match &self.credentials {
            Some((user, _)) => format!("{scheme}://{user}:***@{}:{}", self.host, self.port),
            None => format!("{scheme}://{}:{}", self.host, self.port),
        }
    }

    /// Connection options for a clean session under `client_id`.
    pub fn options(&self, client_id: String, ca_pem: Option<&[u8]>) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options
            .set_keep_alive(Duration::from_secs(15))
            .set_clean_session(true)
            .set_max_packet_size(4 << 20, 64 << 10);
        if let Some((user, pass)) = &self.credentials {
            options.set_credentials(user.clone(), pass.clone());
        }
        if self.tls {
            // The ring provider keeps the build free of C toolchains; installing twice is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            options.set_transport(match ca_pem {
                Some(ca) => Transport::tls(ca.to_vec(), None, None),
                None => Transport::tls_with_default_config(),
            });
        }
        options
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// The topics one instance of one service uses.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub updated: String,
    pub applied: String,
}

impl Topics {
    pub fn new(prefix: &str, service: &str, instance: &str) -> Self {
        Self {
            updated: format!("{prefix}config/updated/{service}"),
            applied: format!("{prefix}config/applied/{service}/{instance}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_defaults_and_credentials() {
        let b = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("127.0.0.1", 1884, false));
        let b = BrokerUrl::parse("mqtts://svc:p%40ss@broker.lan").unwrap();
        assert_eq!((b.port, b.tls), (8883, true));
        assert_eq!(b.credentials, Some(("svc".into(), "p@ss".into())));
        assert_eq!(b.display(), "mqtts://svc:***@broker.lan:8883");
        assert!(BrokerUrl::parse("http://x").is_err());
        assert!(BrokerUrl::parse("nonsense").is_err());
    }

    #[test]
    fn topics_carry_the_prefix() {
        let t = Topics::new("home/", "tts", "pi-1");
        assert_eq!(t.updated, "home/config/updated/tts");
        assert_eq!(t.applied, "home/config/applied/tts/pi-1");
    }
}
