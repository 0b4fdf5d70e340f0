//! The web UI: the built `ui/dist` folder, embedded into the binary and served at `/`.
//!
//! Every GET outside the API's own prefixes answers the file at that path, or `index.html` for
//! a path that is not a file, so a deep link such as `/services/router` opens the right page
//! (the UI's router reads the path). Files under `assets/` carry a content hash in their name
//! and are cached for a year; `index.html` is revalidated on every load, so a new build is
//! picked up at once.

use axum::body::Body;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::ApiError;

/// `ui/dist`, built by `npm run build` in `ui/` and committed, so building the binary needs no
/// Node. In debug builds rust-embed reads the folder at run time; release builds embed it.
#[derive(RustEmbed)]
#[folder = "../../ui/dist/"]
struct Assets;

/// Paths that belong to the API and never fall back to the UI: an unknown one is a
/// problem+json 404, as before the UI existed.
const RESERVED: [&str; 4] = ["/api", "/docs", "/health", "/metrics"];

/// The policy for the UI's pages. Scripts and styles come only from this origin, and nothing
/// is inline. `'unsafe-eval'` is there for one reason: the form validates as you type with
/// the service's own JSON Schema, and the validator (ajv) compiles each schema into a function.
/// `img-src data:` allows the inline SVG icons of the stylesheet.
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn reserved(path: &str) -> bool {
    RESERVED.iter().any(|prefix| {
        path == *prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file(path: &str, data: std::borrow::Cow<'static, [u8]>) -> Response {
    let mut response = Body::from(data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if path == "index.html" {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The router's fallback: the UI for GETs outside the API, problem+json 404 for the rest.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || reserved(path) {
        return ApiError::NotFound("no such route".into()).into_response();
    }
    let relative = path.trim_start_matches('/');
    if !relative.is_empty()
        && let Some(asset) = Assets::get(relative)
    {
        return file(relative, asset.data);
    }
    // A missing hashed asset is a real 404: answering index.html would hand a script tag HTML.
    if relative.starts_with("assets/") {
        return ApiError::NotFound(format!("no file {path}")).into_response();
    }
    match Assets::get("index.html") {
        Some(index) => file("index.html", index.data),
        None => ApiError::NotFound("this build has no web UI".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_prefixes_never_fall_back_to_the_ui() {
        for path in ["/api", "/api/v1/nope", "/docs/x", "/health", "/metrics"] {
            assert!(reserved(path), "{path}");
        }
        for path in ["/", "/services/router", "/apiary", "/history"] {
            assert!(!reserved(path), "{path}");
        }
    }
}
