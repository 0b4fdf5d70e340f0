//! Who is calling: bearer tokens, roles, and the [`Principal`] extractor every route uses.
//!
//! A token is 256 random bits, shown once and stored only as its SHA-256. Checking one hashes
//! the presented secret, finds the record by hash (memoised in memory, so a request costs no
//! database read) and compares the hashes in constant time.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine;
use dials_store::TokenRecord;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{ApiError, AppState};

/// What a token may do. Ordered: each of `viewer < operator < admin` may do everything the one
/// before it may. `service` stands apart: it acts for one service only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read non-secret config, history, search.
    Viewer,
    /// Also write config and secrets, restore, profiles.
    Operator,
    /// Also tokens, delete, import/export, audit.
    Admin,
    /// Scoped to one service: its own config (with secrets), its schema, its status.
    Service,
}

impl Role {
    fn rank(self) -> Option<u8> {
        match self {
            Role::Viewer => Some(1),
            Role::Operator => Some(2),
            Role::Admin => Some(3),
            Role::Service => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.rank(), other.rank()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ if self == other => Some(Ordering::Equal),
            _ => None,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            "service" => Ok(Role::Service),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's id.
    pub token_id: Uuid,
    /// The token's name: the actor recorded in history.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// For `service` tokens, the one service.
    pub service: Option<String>,
    /// When the token stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// The client's address, when known.
    pub address: Option<std::net::IpAddr>,
    hash: [u8; 32],
}

impl Principal {
    /// Builds the principal a token record stands for, refusing a revoked or corrupt one.
    pub(crate) fn from_record(record: &TokenRecord) -> Option<Self> {
        if record.revoked_at.is_some() {
            return None;
        }
        Some(Self {
            token_id: record.id,
            name: record.name.clone(),
            role: record.role.parse().ok()?,
            service: record.service.clone(),
            expires_at: record.expires_at,
            address: None,
            hash: record.hash,
        })
    }

    /// A caller inside the manager (the Home Assistant bridge): no token, recorded as `actor`.
    pub(crate) fn internal(actor: &str, role: Role) -> Self {
        Self {
            token_id: Uuid::nil(),
            name: actor.to_owned(),
            role,
            service: None,
            expires_at: None,
            address: None,
            hash: [0; 32],
        }
    }

    /// Fails with 403 unless this caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {role} role; the token {:?} has {}",
                self.name, self.role
            )))
        }
    }

    /// Fails with 403 unless this caller may read `service`'s config: a viewer or above, or
    /// that service's own token.
    pub fn require_reader_of(&self, service: &str) -> Result<(), ApiError> {
        if self.role == Role::Service {
            return match self.service.as_deref() {
                Some(own) if own == service => Ok(()),
                _ => Err(ApiError::Forbidden(format!(
                    "the service token {:?} may only act for its own service",
                    self.name
                ))),
            };
        }
        self.require(Role::Viewer)
    }

    /// Fails with 403 unless this caller may read `service`'s config document: as
    /// [`require_reader_of`](Self::require_reader_of), and also any service token reading
    /// `global`, the settings every service shares (its secrets stay masked).
    pub fn require_config_reader_of(&self, service: &str) -> Result<(), ApiError> {
        if self.role == Role::Service && service == dials_domain::ServiceName::GLOBAL {
            return Ok(());
        }
        self.require_reader_of(service)
    }

    /// Whether this is the service token of `service` itself (which reads its secrets).
    pub fn is_own_service(&self, service: &str) -> bool {
        self.role == Role::Service && self.service.as_deref() == Some(service)
    }

    /// The actor name written to history.
    pub fn actor(&self) -> &str {
        &self.name
    }
}

/// A new token secret: `dials_` and 256 random bits, base64url.
pub fn new_token_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "dials_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The SHA-256 of a token secret: what the database stores.
pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The cookie that carries a browser session.
pub const SESSION_COOKIE: &str = "dials_session";

/// Filled by the extractor with the caller's name, so the layer that audits denied requests
/// knows who was denied.
#[derive(Debug, Clone, Default)]
pub struct ActorSlot(pub Arc<Mutex<Option<String>>>);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        // The credential presented, by its hash: what the failure budget is kept for.
        let credential = match parts.headers.get(header::AUTHORIZATION) {
            Some(header) => bearer(header).map(hash_token),
            None => session_cookie(&parts.headers).map(|c| hash_token(&c)),
        };
        state.guard.check_blocked(credential.as_ref(), address)?;
        let result = if let Some(header) = parts.headers.get(header::AUTHORIZATION) {
            match bearer(header) {
                Some(secret) => authenticate(state, secret).await,
                None => Err(ApiError::Unauthorized(
                    "the Authorization header is not `Bearer <token>`".into(),
                )),
            }
        } else if let Some(cookie) = session_cookie(&parts.headers) {
            from_session(state, &cookie, parts).await
        } else {
            return Err(ApiError::Unauthorized(
                "no credentials: send `Authorization: Bearer <token>` or sign in".into(),
            ));
        };
        match result {
            Ok(mut principal) => {
                principal.address = address;
                if let Some(slot) = parts.extensions.get::<ActorSlot>()
                    && let Ok(mut slot) = slot.0.lock()
                {
                    *slot = Some(principal.name.clone());
                }
                state.guard.touch(state, &principal);
                Ok(principal)
            }
            Err(e) => state.guard.judge(credential.as_ref(), address, Err(e)),
        }
    }
}

fn bearer(header: &axum::http::HeaderValue) -> Option<&str> {
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// A principal from a session cookie; an unsafe method must echo the session's CSRF token.
async fn from_session(
    state: &AppState,
    cookie: &str,
    parts: &Parts,
) -> Result<Principal, ApiError> {
    let hash = hash_token(cookie);
    let session = state
        .store
        .session(&hash)
        .await?
        .filter(|s| s.expires_at > OffsetDateTime::now_utc())
        .ok_or_else(|| ApiError::Unauthorized("the session has ended; sign in again".into()))?;
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "CSRF check failed: send the session's csrf_token in X-CSRF-Token".into(),
            ));
        }
    }
    let record = state.store.token_by_id(session.token_id).await?;
    let principal = record
        .as_ref()
        .and_then(Principal::from_record)
        .ok_or_else(|| ApiError::Unauthorized("the session's token was revoked".into()))?;
    if principal
        .expires_at
        .is_some_and(|t| t <= OffsetDateTime::now_utc())
    {
        return Err(ApiError::Unauthorized(
            "the session's token has expired".into(),
        ));
    }
    Ok(principal)
}

/// Checks a presented token secret.
pub(crate) async fn authenticate(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    let hash = hash_token(secret);
    let principal = match state.tokens.get(&hash) {
        Some(p) => p,
        None => {
            let record = state.store.token_by_hash(&hash).await?;
            let principal = record
                .as_ref()
                .and_then(Principal::from_record)
                .ok_or_else(|| ApiError::Unauthorized("the token is not valid".into()))?;
            state.tokens.insert(hash, principal.clone());
            principal
        }
    };
    // The lookup was by hash; this comparison is the one that must not leak timing.
    if !bool::from(principal.hash.ct_eq(&hash)) {
        return Err(ApiError::Unauthorized("the token is not valid".into()));
    }
    if principal
        .expires_at
        .is_some_and(|t| t <= OffsetDateTime::now_utc())
    {
        return Err(ApiError::Unauthorized("the token has expired".into()));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_service_stands_apart() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!(Role::Service.partial_cmp(&Role::Viewer), None);
        assert_eq!(Role::Viewer.partial_cmp(&Role::Service), None);
        assert!(Role::Service >= Role::Service);
    }

    #[test]
    fn token_secrets_are_long_random_and_hash_stably() {
        let a = new_token_secret();
        let b = new_token_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("dials_") && a.len() == 6 + 43, "{a}");
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
