//! The `--mqtt` setting and how `auto` is resolved.

use std::net::SocketAddr;
use std::time::Duration;

use dials_wire::mqtt::BrokerUrl;

/// A broker setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

/// What `--mqtt` / `DIALS_MQTT_URL` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerSetting {
    /// Use the broker answering on 127.0.0.1:1883, else run one in-process there.
    Auto,
    /// Run the in-process broker on this address (default 127.0.0.1:1883).
    Embedded(SocketAddr),
    /// Connect to an external broker.
    External(BrokerUrl),
    /// No MQTT at all.
    None,
}

const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 1883);

impl BrokerSetting {
    /// Parses the setting's text.
    pub fn parse(raw: &str) -> Result<Self, SettingError> {
        let raw = raw.trim();
        match raw {
            "auto" => return Ok(BrokerSetting::Auto),
            "none" => return Ok(BrokerSetting::None),
            "embedded" => return Ok(BrokerSetting::Embedded(SocketAddr::from(DEFAULT_ADDR))),
            _ => {}
        }
        if let Some(addr) = raw.strip_prefix("embedded:") {
            let addr = addr.parse::<SocketAddr>().map_err(|_| {
                SettingError(format!(
                    "`embedded:{addr}` needs an IP:PORT such as embedded:127.0.0.1:1883"
                ))
            })?;
            return Ok(BrokerSetting::Embedded(addr));
        }
        if !raw.contains("://") {
            return Err(SettingError(format!(
                "expected auto, embedded[:ADDR], mqtt://[user:pass@]host:port, mqtts://… or \
                 none, not {raw:?}"
            )));
        }
        let url = BrokerUrl::parse(raw).map_err(|e| SettingError(e.to_string()))?;
        Ok(BrokerSetting::External(url))
    }
}

/// What the manager will actually do about MQTT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Start the in-process broker on this address, and connect to it.
    Embedded(SocketAddr),
    /// Connect to an external broker.
    External(BrokerUrl),
    /// No MQTT.
    Disabled,
}

impl BrokerChoice {
    /// `external`, `embedded` or `none`.
    pub fn mode(&self) -> &'static str {
        match self {
            BrokerChoice::Embedded(_) => "embedded",
            BrokerChoice::External(_) => "external",
            BrokerChoice::Disabled => "none",
        }
    }

    /// The broker it connects to, if any.
    pub fn broker_url(&self) -> Option<BrokerUrl> {
        match self {
            BrokerChoice::Embedded(addr) => {
                Some(BrokerUrl::plain(addr.ip().to_string(), addr.port()))
            }
            BrokerChoice::External(b) => Some(b.clone()),
            BrokerChoice::Disabled => None,
        }
    }

    /// Where it connects, without credentials.
    pub fn display_url(&self) -> Option<String> {
        match self {
            BrokerChoice::Embedded(addr) => Some(format!("mqtt://{addr}")),
            BrokerChoice::External(b) => Some(b.display_url()),
            BrokerChoice::Disabled => None,
        }
    }
}

/// Turns the setting into a choice; `auto` probes 127.0.0.1:1883 for a broker already answering.
pub async fn resolve(setting: &BrokerSetting) -> BrokerChoice {
    resolve_at(setting, SocketAddr::from(DEFAULT_ADDR)).await
}

/// [`resolve`], with `auto` probing `default` instead of 127.0.0.1:1883.
pub async fn resolve_at(setting: &BrokerSetting, default: SocketAddr) -> BrokerChoice {
    match setting {
        BrokerSetting::None => BrokerChoice::Disabled,
        BrokerSetting::Embedded(addr) => BrokerChoice::Embedded(*addr),
        BrokerSetting::External(b) => BrokerChoice::External(b.clone()),
        BrokerSetting::Auto => {
            let probe = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(default),
            )
            .await;
            match probe {
                Ok(Ok(_)) => BrokerChoice::External(BrokerUrl::plain(
                    default.ip().to_string(),
                    default.port(),
                )),
                _ => BrokerChoice::Embedded(default),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_of_the_setting() {
        assert_eq!(BrokerSetting::parse("auto").unwrap(), BrokerSetting::Auto);
        assert_eq!(BrokerSetting::parse("none").unwrap(), BrokerSetting::None);
        assert_eq!(
            BrokerSetting::parse("embedded").unwrap(),
            BrokerSetting::Embedded("127.0.0.1:1883".parse().unwrap())
        );
        assert_eq!(
            BrokerSetting::parse("embedded:127.0.0.1:1999").unwrap(),
            BrokerSetting::Embedded("127.0.0.1:1999".parse().unwrap())
        );
        let BrokerSetting::External(b) =
            BrokerSetting::parse("mqtt://u%40x:p%3Ass@broker.lan:1884").unwrap()
        else {
            panic!("external")
        };
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.lan", 1884, false)
        );
        let credentials = b.credentials.clone().unwrap();
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("u@x", "p:ss")
        );
        assert_eq!(
            b.display_url(),
            "mqtt://broker.lan:1884",
            "no credentials shown"
        );
        assert!(
            !format!("{b:?}").contains("p:ss"),
            "Debug hides the password"
        );
        let BrokerSetting::External(t) = BrokerSetting::parse("mqtts://broker.lan").unwrap() else {
            panic!("external")
        };
        assert_eq!((t.port, t.tls), (8883, true));
    }

    #[tokio::test]
    async fn auto_uses_a_broker_that_answers_and_otherwise_runs_its_own() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let found = resolve_at(&BrokerSetting::Auto, addr).await;
        assert_eq!(found.mode(), "external");
        assert_eq!(found.display_url(), Some(format!("mqtt://{addr}")));
        drop(listener);
        let own = resolve_at(&BrokerSetting::Auto, addr).await;
        assert_eq!(own, BrokerChoice::Embedded(addr));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in ["", "http://x", "embedded:nowhere", "mqtt://", "broker:1883"] {
            assert!(BrokerSetting::parse(bad).is_err(), "{bad:?}");
        }
    }
}
