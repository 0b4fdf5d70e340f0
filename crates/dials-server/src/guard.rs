//! Guarding authentication: repeated failures of one presented credential are rate limited
//! (429), and so are failures from one address, with a much higher threshold; token use is
//! recorded (at most once a minute per token, off the request path).
//!
//! Why two budgets: a Raspberry Pi runs the manager, its services and the admin's browser on
//! 127.0.0.1. Counting failures per address alone let one service with a stale token lock out
//! everyone on the machine. A credential that keeps failing is blocked on its own, and its
//! blocked attempts no longer count towards its address (they guess nothing: the answer is
//! 429 before the credential is looked at). The address budget still stops guessing with many
//! different credentials, which is the only way to guess.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::{ApiError, AppState, Principal};

/// Failed authentications one credential may make in a burst before it is blocked.
const CREDENTIAL_BURST: u32 = 10;
/// After the burst, one more failure of that credential is allowed per this period.
const CREDENTIAL_PERIOD: Duration = Duration::from_secs(6);
/// Failed authentications one address may make in a burst (with different credentials, or
/// none) before the address is blocked.
const ADDRESS_BURST: u32 = 100;
/// After the burst, one more failure from that address is allowed per this period.
const ADDRESS_PERIOD: Duration = Duration::from_millis(600);
/// Blocked keys kept at most, per kind, before expired ones are swept.
const MAX_BLOCKED: usize = 100_000;
/// How often a token's last-used time is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// What a presented credential is known by here: the SHA-256 of its secret (a bearer token or
/// a session cookie), never the secret itself.
pub type CredentialHash = [u8; 32];

/// One budget of failures per key, and the keys currently blocked.
#[derive(Debug)]
struct Budget<K: Hash + Eq + Clone> {
    failures: DefaultKeyedRateLimiter<K>,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Budget<K> {
    fn new(burst: u32, period: Duration) -> Self {
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Until when `key` is blocked, if it is.
    fn blocked_until(&self, key: &K) -> Option<Instant> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => Some(*until),
            Some(_) => {
                blocked.remove(key);
                None
            }
            None => None,
        }
    }

    /// Counts one failure; once over budget, blocks `key` until the budget refills and says
    /// until when.
    fn fail(&self, key: &K) -> Option<Instant> {
        match self.failures.check_key(key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let until = Instant::now() + wait.max(Duration::from_secs(1));
                let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
                if blocked.len() > MAX_BLOCKED {
                    // Bound memory under a flood of many keys.
                    blocked.retain(|_, t| *t > Instant::now());
                }
                blocked.insert(key.clone(), until);
                self.failures.retain_recent();
                Some(until)
            }
        }
    }
}

/// Authentication failures per credential and per address, and what is currently blocked.
#[derive(Debug)]
pub struct AuthGuard {
    credentials: Budget<CredentialHash>,
    addresses: Budget<IpAddr>,
    touched: Mutex<HashMap<Uuid, Instant>>,
}

impl Default for AuthGuard {
    fn default() -> Self {
        Self {
            credentials: Budget::new(CREDENTIAL_BURST, CREDENTIAL_PERIOD),
            addresses: Budget::new(ADDRESS_BURST, ADDRESS_PERIOD),
            touched: Mutex::new(HashMap::new()),
        }
    }
}

impl AuthGuard {
    /// 429 while the credential presented (if any) or the address (if known) is blocked for
    /// failing too often. Checked before the credential is looked at.
    pub fn check_blocked(
        &self,
        credential: Option<&CredentialHash>,
        ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        if let Some(until) = credential.and_then(|c| self.credentials.blocked_until(c)) {
            return Err(too_many(until, credential_blocked(credential)));
        }
        if let Some(until) = ip.and_then(|ip| self.addresses.blocked_until(&ip)) {
            return Err(too_many(until, ADDRESS_BLOCKED.into()));
        }
        Ok(())
    }

    /// Counts a failed authentication (401) of `credential` from `ip` towards both budgets,
    /// turning it into 429 once either is spent; other outcomes pass through.
    pub fn judge<T>(
        &self,
        credential: Option<&CredentialHash>,
        ip: Option<IpAddr>,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let e = match result {
            Err(e @ ApiError::Unauthorized(_)) => e,
            other => return other,
        };
        // Both budgets are charged: a failure counts against the credential and its address.
        let by_credential = credential.and_then(|c| self.credentials.fail(c));
        let by_address = ip.and_then(|ip| self.addresses.fail(&ip));
        match (by_credential, by_address) {
            (_, Some(until)) => Err(too_many(until, ADDRESS_BLOCKED.into())),
            (Some(until), None) => Err(too_many(until, credential_blocked(credential))),
            (None, None) => Err(e),
        }
    }

    /// Records that a token was used, at most once a minute per token.
    pub fn touch(&self, state: &AppState, principal: &Principal) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            match touched.get(&principal.token_id) {
                Some(at) if now.duration_since(*at) < TOUCH_EVERY => return,
                _ => {
                    touched.insert(principal.token_id, now);
                }
            }
        }
        let store = state.store.clone();
        let id = principal.token_id;
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(id, time::OffsetDateTime::now_utc()).await {
                tracing::debug!(error = %e, "cannot record token use");
            }
        });
    }
}

const ADDRESS_BLOCKED: &str = "too many failed authentications from this address";

/// The reason a blocked credential gives, naming it by the start of its hash (enough to tell
/// two apart in the access log, nothing that helps to guess one).
fn credential_blocked(credential: Option<&CredentialHash>) -> String {
    let tag: String = credential
        .map(|c| c[..4].iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default();
    format!("too many failed authentications with this credential (sha256 {tag}…)")
}

fn too_many(until: Instant, reason: String) -> ApiError {
    let secs = until
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    ApiError::TooManyRequests {
        retry_after: secs,
        reason,
    }
}
