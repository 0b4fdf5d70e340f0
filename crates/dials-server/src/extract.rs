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

/// Time a client has to send a whole request body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A JSON request body: 415 when the request says it is something else (a body without a
/// `Content-Type` is read as JSON), 413 over the size limit, and 400 for anything that does not
/// parse into `T`, naming where. Parsing is strict (see [`parse_json`]).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_json_type(req.headers())?;
        let limit = state.settings.max_body_bytes;
        // A body that trickles in (or never comes) holds a connection and a buffer: all of it
        // must arrive in time.
        let bytes = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::RequestTimeout(BODY_TIMEOUT.as_secs()))?
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

/// Refuses a body declared as anything but JSON (`application/json`, or any `…+json` type
/// such as `application/merge-patch+json`).
fn check_json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be JSON (Content-Type: application/json), not {text:?}; with curl, \
             use --json"
        )))
    }
}

/// Parses a JSON body into `T`, telling syntax errors from shape errors and naming the field
/// a shape error is in. Stricter than JSON's grammar where leniency would lose data silently:
/// a key given twice in one object and an integer beyond the 64-bit range are refused instead
/// of being collapsed or rounded.
pub fn parse_json<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    if let Some(literal) = dials_wire::strict::oversized_integer(bytes) {
        return Err(ApiError::BadRequest(format!(
            "the integer {literal} is beyond the 64-bit range and would lose precision; send it \
             as a string, or as a number with a fraction or exponent if rounding is intended"
        )));
    }
    let checked: dials_wire::strict::StrictValue = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    // Every request body with a shape is an object. Derived deserializers also take a struct
    // from an array of its fields in order, which would make `[]` a request with every field
    // defaulted. (A body taken as any JSON value, a schema, is judged by its own rules.)
    if checked.0.is_array()
        && std::any::TypeId::of::<T>() != std::any::TypeId::of::<serde_json::Value>()
    {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object, not an array".into(),
        ));
    }
    // The body is almost always right: shape it without tracking the path, moving what was
    // read rather than copying it, and only when that fails read it again to name where.
    if let Ok(value) = T::deserialize(checked.0) {
        return Ok(value);
    }
    let checked: dials_wire::strict::StrictValue = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    let value = serde_path_to_error::deserialize(checked.0).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else if e.path().iter().next().is_none() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid request body at `{}`: {inner}", e.path()))
        }
    })?;
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
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<IfMatch>,
    /// `If-None-Match: *`: create only.
    pub create_only: bool,
}

/// What an `If-Match` header asks for (RFC 9110 §13.1.1: strong comparison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the service must exist, at whatever version.
    Any,
    /// One or more version ETags (`"3"` or `"3", "4"`): the service must be at one of them.
    Versions(Vec<Version>),
    /// Only weak ETags (`W/"3"`): these never match under strong comparison.
    Weak(String),
}

impl IfMatch {
    /// The header's grammar, as the OpenAPI document states it: `*`, or a comma-separated list
    /// of version ETags, strong (`"3"`) or weak (`W/"3"`), with optional spaces and tabs around
    /// the commas and empty elements ignored (RFC 9110 §5.6.1). [`IfMatch::parse`] accepts
    /// exactly this, less the numbers beyond a version's range.
    pub const PATTERN: &'static str =
        r#"^[ \t]*(\*|(,[ \t]*)*(W/)?"[0-9]{1,20}"([ \t]*,([ \t]*(W/)?"[0-9]{1,20}")?)*)[ \t]*$"#;

    /// Parses the header's value.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        const OWS: [char; 2] = [' ', '\t'];
        let text = text.trim_matches(OWS);
        if text == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        let mut weak = false;
        for tag in text
            .split(',')
            .map(|t| t.trim_matches(OWS))
            .filter(|t| !t.is_empty())
        {
            let (is_weak, tag) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            let version = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .filter(|d| (1..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "If-Match must be `*` or version ETags such as \"3\", not {text:?}"
                    ))
                })?;
            if is_weak {
                weak = true;
            } else {
                versions.push(Version(version));
            }
        }
        match (versions.is_empty(), weak) {
            (false, _) => Ok(IfMatch::Versions(versions)),
            (true, true) => Ok(IfMatch::Weak(text.to_owned())),
            (true, false) => Err(ApiError::BadRequest(
                "If-Match is empty; send `*` or a version ETag such as \"3\"".into(),
            )),
        }
    }

    /// The one version this names, if it names exactly one.
    pub fn version(&self) -> Option<Version> {
        match self {
            IfMatch::Versions(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }
}

impl Conditions {
    /// Reads `If-Match` and `If-None-Match` from the headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut out = Conditions::default();
        if let Some(value) = headers.get(header::IF_MATCH) {
            let text = value.to_str().map_err(|_| {
                ApiError::BadRequest("If-Match must be `*` or version ETags".into())
            })?;
            out.if_match = Some(IfMatch::parse(text)?);
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
    /// A cursor's grammar, as the OpenAPI document states it: a record id, which
    /// [`Page::parse`] accepts exactly.
    pub const CURSOR_PATTERN: &'static str = "^[1-9][0-9]{0,17}$";
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
                digits::<i64>(c)
                    .filter(|id| *id > 0 && c.len() <= 18)
                    .ok_or_else(|| {
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

/// Reads an optional whole number from the query string as the OpenAPI document types it:
/// decimal digits only, without a sign, spaces or leading zeros (`str::parse` alone takes `+5`
/// and `05`). For `#[serde(default, deserialize_with = "whole_number")]`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
{
    use serde::Deserialize;
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    digits(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a whole number")))
}

/// A version in the path (`…/versions/{version}`), as the OpenAPI document types it: a whole
/// number from 1, in decimal digits only.
pub fn path_version(raw: &str) -> Result<Version, ApiError> {
    digits::<u64>(raw)
        .filter(|v| *v >= 1)
        .map(Version)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "version must be a whole number from 1, not {raw:?}"
            ))
        })
}

/// `text` as a number if it is decimal digits without a leading zero (or `0` itself).
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    digits.then(|| text.parse::<T>().ok()).flatten()
}

/// The cursor's grammar, as the OpenAPI document states it: the last instance name of a page,
/// in lowercase hex (opaque, and safe in a query string whatever characters the name holds).
pub const INSTANCE_CURSOR_PATTERN: &str = "^([0-9a-f]{2}){1,256}$";

/// Writes the cursor that follows `instance`.
pub fn encode_instance_cursor(instance: &str) -> String {
    hex::encode(instance)
}

/// Reads a cursor [`encode_instance_cursor`] gave out: the instance name it follows.
pub fn decode_instance_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest(format!("cursor {cursor:?} is not one this API gave out"));
    // `hex` alone would take uppercase digits too, which the pattern rules out.
    if cursor.is_empty()
        || cursor.len() > 512
        || !cursor
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad());
    }
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_cursor_round_trips_any_instance_name() {
        for name in ["pi-1", "küche 2", "a&b=c?d"] {
            assert_eq!(
                decode_instance_cursor(&encode_instance_cursor(name)).unwrap(),
                name
            );
        }
        for bad in ["", "7", "zz", "ff", "6A", "+a"] {
            assert!(decode_instance_cursor(bad).is_err(), "{bad}");
        }
    }
}
