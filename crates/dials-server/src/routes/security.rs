//! Tokens, browser sessions and the access log.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dials_domain::ServiceName;
use dials_store::{AuditQuery, AuditRecord, SessionRecord, TokenRecord};
use dials_wire::{
    AuditEntry, AuditPage, CreateToken, Problem, SessionRequest, SessionResponse, TokenCreated,
    TokenInfo, TokenList,
};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::{ActorSlot, SESSION_COOKIE, authenticate, session_cookie};
use crate::error::Denied;
use crate::extract::{ClientAddr, JsonBody, Page, Query};
use crate::{ApiError, AppState, Principal, Role, hash_token, new_token_secret};

/// How long a browser session lasts.
const SESSION_TTL: Duration = Duration::hours(12);

/// Layer: every request denied with 401 or 403 goes to the access log, with who (if known),
/// what, from where and why; repeats are aggregated (see `denials`).
pub async fn audit_denials(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = ActorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let action = format!("{} {}", req.method(), req.uri().path());
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let response = next.run(req).await;
    if let Some(Denied(reason)) = response.extensions().get::<Denied>() {
        let actor = slot
            .0
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| "anonymous".into());
        let record = AuditRecord {
            id: 0,
            at: OffsetDateTime::now_utc(),
            actor,
            action,
            target: None,
            address,
            outcome: "denied".into(),
            reason: Some(reason.clone()),
        };
        if let Some(record) = state.denials.note(record, std::time::Instant::now()) {
            let store = state.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.insert_audit(&record).await {
                    tracing::warn!(error = %e, "cannot write a denied request to the audit log");
                }
            });
        }
    }
    response
}

/// Writes one entry to the access log (for events that are not config changes).
pub async fn audit(state: &AppState, principal: &Principal, action: &str, target: Option<String>) {
    let record = AuditRecord {
        id: 0,
        at: OffsetDateTime::now_utc(),
        actor: principal.actor().to_owned(),
        action: action.to_owned(),
        target,
        address: principal.address.map(|a| a.to_string()),
        outcome: "ok".into(),
        reason: None,
    };
    if let Err(e) = state.store.insert_audit(&record).await {
        tracing::warn!(error = %e, action, "cannot write to the audit log");
    }
}

fn token_info(r: TokenRecord) -> TokenInfo {
    TokenInfo {
        id: r.id,
        name: r.name,
        role: r.role,
        service: r.service,
        created_at: r.created_at,
        created_by: r.created_by,
        expires_at: r.expires_at,
        last_used_at: r.last_used_at,
        revoked_at: r.revoked_at,
    }
}

/// Creates a token. Its secret is in this answer and nowhere else, ever.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "security", security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, body = TokenCreated),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    principal.require(Role::Admin)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let role: Role = body.role.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "role must be viewer, operator, admin or service, not {:?}",
            body.role
        ))
    })?;
    let service = match (role, body.service.as_deref()) {
        (Role::Service, Some(s)) => Some(ServiceName::parse(s)?.to_string()),
        (Role::Service, None) => {
            return Err(ApiError::BadRequest(
                "a service token needs `service`".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::BadRequest(
                "only service tokens have a `service`".into(),
            ));
        }
        (_, None) => None,
    };
    let now = crate::ops::now();
    if body.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::BadRequest("expires_at is in the past".into()));
    }
    let secret = new_token_secret();
    let record = TokenRecord {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        service,
        hash: hash_token(&secret),
        created_at: now,
        created_by: principal.actor().to_owned(),
        expires_at: body.expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    state.store.insert_token(&record).await?;
    audit(
        &state,
        &principal,
        "token.create",
        Some(format!("{} ({})", record.id, record.name)),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: token_info(record),
            token: secret,
        }),
    ))
}

/// Every token (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "security", security(("bearer" = [])),
    responses(
        (status = 200, body = TokenList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<TokenList>, ApiError> {
    principal.require(Role::Admin)?;
    let tokens = state
        .store
        .tokens()
        .await?
        .into_iter()
        .map(token_info)
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token at once, with every session opened with it.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "security", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a token id")))?;
    if !state
        .store
        .revoke_token(id, OffsetDateTime::now_utc())
        .await?
    {
        return Err(ApiError::NotFound(format!("no live token {id}")));
    }
    state.tokens.forget(id);
    audit(&state, &principal, "token.revoke", Some(id.to_string())).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs a browser in: sets an HttpOnly, SameSite=Strict session cookie and answers the CSRF
/// token that unsafe requests made with the cookie must carry in `X-CSRF-Token`.
#[utoipa::path(post, path = "/api/v1/session", tag = "security",
    request_body = SessionRequest,
    responses(
        (status = 200, body = SessionResponse, headers(("Set-Cookie" = String))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_session(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    slot: Option<axum::Extension<ActorSlot>>,
    JsonBody(body): JsonBody<SessionRequest>,
) -> Result<Response, ApiError> {
    let credential = hash_token(body.token.trim());
    state.guard.check_blocked(Some(&credential), ip)?;
    let mut principal = state.guard.judge(
        Some(&credential),
        ip,
        authenticate(&state, body.token.trim()).await,
    )?;
    principal.address = ip;
    // A service token is a machine's credential, scoped to one service: it never opens a
    // browser session, so a leaked one cannot be used to browse the fleet.
    if principal.role == Role::Service {
        // Named in the access log entry the refusal makes.
        if let Some(axum::Extension(slot)) = slot
            && let Ok(mut slot) = slot.0.lock()
        {
            *slot = Some(principal.name.clone());
        }
        return Err(ApiError::Forbidden(format!(
            "the service token {:?} acts for its service only and cannot sign in to the web UI; \
             use a viewer, operator or admin token",
            principal.name
        )));
    }
    let cookie = new_token_secret();
    let csrf = new_token_secret();
    let now = OffsetDateTime::now_utc();
    let expires_at = match principal.expires_at {
        Some(t) => t.min(now + SESSION_TTL),
        None => now + SESSION_TTL,
    };
    state
        .store
        .insert_session(&SessionRecord {
            hash: hash_token(&cookie),
            token_id: principal.token_id,
            csrf: csrf.clone(),
            created_at: now,
            expires_at,
        })
        .await?;
    audit(&state, &principal, "session.create", None).await;
    let max_age = (expires_at - now).whole_seconds().max(0);
    // Over HTTPS the cookie is never sent in clear.
    let secure = if state.settings.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let set_cookie = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    let mut response = Json(SessionResponse {
        csrf_token: csrf,
        expires_at,
        name: principal.name.clone(),
        role: principal.role.as_str().to_owned(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "security",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    principal: Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(cookie) = session_cookie(&headers) {
        state.store.delete_session(&hash_token(&cookie)).await?;
        audit(&state, &principal, "session.delete", None).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("dials_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this actor.
    actor: Option<String>,
    /// Only actions starting with this, e.g. `config.` or `token.`.
    action: Option<String>,
    /// `ok` or `denied`.
    outcome: Option<String>,
    /// At or after (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    since: Option<OffsetDateTime>,
    /// Before (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    until: Option<OffsetDateTime>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The access log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "security", security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, body = AuditPage),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    principal.require(Role::Admin)?;
    let page = Page::parse(params.limit, params.cursor.as_deref())?;
    let mut records = state
        .store
        .audit(&AuditQuery {
            actor: params.actor,
            action: params.action,
            outcome: params.outcome,
            since: params.since,
            until: params.until,
            before_id: page.before_id,
            limit: page.fetch(),
        })
        .await?;
    let next_cursor = page.finish(&mut records, |r| r.id);
    let items = records
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target: r.target,
            address: r.address,
            outcome: r.outcome,
            reason: r.reason,
        })
        .collect();
    Ok(Json(AuditPage { items, next_cursor }))
}
