//! Extractors whose rejections are shaped like every other error: a JSON body read within the
//! size limit, query strings, service names from the path, and conditional-request headers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use dials_domain::{ServiceName, Version};
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// A JSON request body. Unlike `axum::Json` it does not insist on a `Content-Type`, so a quick
/// `curl -d` works; it answers 413 over the size limit and 400 for anything that does not parse
/// into `T`, naming where.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.settings.max_body_bytes;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, limit))?;
        parse_json(&bytes).map(JsonBody)
    }
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest(format!("could not read the request body: {e}"))
    }
}

/// Parses a JSON body into `T`, telling syntax errors from shape errors and naming the field
/// a shape error is in.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else if e.path().iter().next().is_none() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid request body at `{}`: {inner}", e.path()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A query string parsed into `T`; a bad one is 400 naming the problem.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Parses a service name: 400 when it breaks the naming rule.
pub fn service_name(raw: &str) -> Result<ServiceName, ApiError> {
    Ok(ServiceName::parse(raw)?)
}

/// The `{service}` segment of the route, checked against the naming rule before the body is
/// read, so a bad name is reported as such whatever the body holds.
#[derive(Debug)]
pub struct ServicePath(pub ServiceName);

impl<S: Send + Sync> FromRequestParts<S> for ServicePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let raw = params
            .iter()
            .find(|(name, _)| *name == "service")
            .map(|(_, value)| value)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("route has no {{service}}")))?;
        service_name(raw).map(ServicePath)
    }
}

/// The conditional-request headers of a write.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions {
    /// `If-Match: "<version>"`.
    pub if_match: Option<Version>,
    /// `If-None-Match: *`: create only.
    pub create_only: bool,
}

impl Conditions {
    /// Reads `If-Match` and `If-None-Match` from the headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut out = Conditions::default();
        if let Some(value) = headers.get(header::IF_MATCH) {
            let text = value.to_str().unwrap_or_default().trim();
            let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            let version = tag.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "If-Match must be a version ETag such as \"3\", not {text:?}"
                ))
            })?;
            out.if_match = Some(Version(version));
        }
        if let Some(value) = headers.get(header::IF_NONE_MATCH) {
            match value.to_str().unwrap_or_default().trim() {
                "*" => out.create_only = true,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "on a write, If-None-Match may only be `*` (create), not {other:?}"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// The client's IP address, when the server knows it (absent when the router is driven
/// without a socket).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Cursor paging of the newest-first lists (history, audit): `limit` of 1 to 1000 (default
/// 100) and the opaque `cursor` a previous page gave out.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Records on this page.
    pub limit: u32,
    /// Only records older than this id.
    pub before_id: Option<i64>,
}

impl Page {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1000;

    /// Checks the paging parameters of a request.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be 1 to {}, not {limit}",
                Self::MAX_LIMIT
            )));
        }
        let before_id = cursor
            .map(|c| {
                c.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                    ApiError::BadRequest(format!("cursor {c:?} is not one this API gave out"))
                })
            })
            .transpose()?;
        Ok(Self { limit, before_id })
    }

    /// How many records to ask the store for: one more than the page, to tell whether another
    /// page follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }

    /// Cuts `records` (fetched with [`Page::fetch`]) to the page and returns the cursor of the
    /// next one, if any.
    pub fn finish<T>(&self, records: &mut Vec<T>, id: impl Fn(&T) -> i64) -> Option<String> {
        let more = records.len() > self.limit as usize;
        records.truncate(self.limit as usize);
        if more {
            records.last().map(|r| id(r).to_string())
        } else {
            None
        }
    }
}
