//! Guarding authentication: repeated failures from one address are rate limited (429), and
//! token use is recorded (at most once a minute per token, off the request path).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::{ApiError, AppState, Principal};

/// Failed authentications one address may make in a burst before it is slowed down.
const FAILURE_BURST: u32 = 10;
/// After the burst, one more failure is allowed per this period.
const FAILURE_PERIOD: Duration = Duration::from_secs(6);
/// How often a token's last-used time is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Authentication failures per address, and addresses currently blocked.
#[derive(Debug)]
pub struct AuthGuard {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    touched: Mutex<HashMap<Uuid, Instant>>,
}

impl Default for AuthGuard {
    fn default() -> Self {
        let quota = Quota::with_period(FAILURE_PERIOD)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(FAILURE_BURST).unwrap_or(NonZeroU32::MIN));
        Self {
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }
}

impl AuthGuard {
    /// 429 while `ip` is blocked for failing too often.
    pub fn check_blocked(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => Err(too_many(*until)),
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication; once over budget, the address is blocked until the
    /// budget refills and the answer becomes 429.
    pub fn failed(&self, ip: IpAddr) -> Option<ApiError> {
        match self.failures.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let until = Instant::now() + wait.max(Duration::from_secs(1));
                let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
                if blocked.len() > 100_000 {
                    // Bound memory under a flood from many addresses.
                    blocked.retain(|_, t| *t > Instant::now());
                }
                blocked.insert(ip, until);
                self.failures.retain_recent();
                Some(too_many(until))
            }
        }
    }

    /// Counts a failed authentication (401) from `ip` towards its budget, turning it into 429
    /// once the budget is spent; other outcomes pass through.
    pub fn judge<T>(&self, ip: Option<IpAddr>, result: Result<T, ApiError>) -> Result<T, ApiError> {
        match (result, ip) {
            (Err(e @ ApiError::Unauthorized(_)), Some(ip)) => Err(self.failed(ip).unwrap_or(e)),
            (other, _) => other,
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

fn too_many(until: Instant) -> ApiError {
    let secs = until
        .saturating_duration_since(Instant::now())
        .as_secs()
        .max(1);
    ApiError::TooManyRequests { retry_after: secs }
}
