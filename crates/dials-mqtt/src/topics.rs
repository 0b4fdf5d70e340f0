//! Topic names, with the configured prefix.

/// The topics dials uses, all under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (empty, or e.g. `home/` — used exactly as given).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `config/updated/{service}`: retained signed envelopes.
    pub fn updated(&self, service: &str) -> String {
        format!("{}config/updated/{service}", self.prefix)
    }

    /// `system/health/config-manager`: retained health, with the last will.
    pub fn health(&self) -> String {
        format!("{}system/health/config-manager", self.prefix)
    }

    /// `audit/config/{action}`.
    pub fn audit(&self, action: &str) -> String {
        format!("{}audit/config/{action}", self.prefix)
    }

    /// The filter for every service's envelope: `config/updated/+`.
    pub fn updated_filter(&self) -> String {
        format!("{}config/updated/+", self.prefix)
    }

    /// The service an updated topic names.
    pub fn parse_updated<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let service = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("config/updated/")?;
        (!service.is_empty() && !service.contains('/')).then_some(service)
    }

    /// The filter for applied reports: `config/applied/+/+`.
    pub fn applied_filter(&self) -> String {
        format!("{}config/applied/+/+", self.prefix)
    }

    /// Splits an applied topic into service and instance.
    pub fn parse_applied<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("config/applied/")?;
        let (service, instance) = rest.split_once('/')?;
        (!instance.is_empty() && !instance.contains('/')).then_some((service, instance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_carries_the_prefix() {
        let t = Topics::new("home/");
        assert_eq!(t.updated("tts"), "home/config/updated/tts");
        assert_eq!(t.health(), "home/system/health/config-manager");
        assert_eq!(t.audit("put"), "home/audit/config/put");
        assert_eq!(t.applied_filter(), "home/config/applied/+/+");
        assert_eq!(t.updated_filter(), "home/config/updated/+");
        assert_eq!(t.parse_updated("home/config/updated/tts"), Some("tts"));
        assert_eq!(t.parse_updated("config/updated/tts"), None);
        assert_eq!(t.parse_updated("home/config/updated/"), None);
        assert_eq!(
            t.parse_applied("home/config/applied/tts/pi-1"),
            Some(("tts", "pi-1"))
        );
        assert_eq!(t.parse_applied("config/applied/tts/pi-1"), None);
        assert_eq!(t.parse_applied("home/config/applied/tts/"), None);
    }
}
