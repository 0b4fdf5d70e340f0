//! The one server a run talks to — always on loopback — and the requests it sends it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, IF_MATCH, IF_NONE_MATCH};
use hyper::http::HeaderValue;
use hyper::{Method, Request, Uri};

/// A request as this tool sends it: the whole body in memory.
pub type Req = Request<Full<Bytes>>;

/// A dials server on this machine and the bearer token to use with it.
#[derive(Debug, Clone)]
pub struct Api {
    addr: SocketAddr,
    host: HeaderValue,
    base: String,
    auth: HeaderValue,
}

impl Api {
    /// Parses `url` (`http://HOST:PORT[/prefix]`), refusing any host that is not loopback.
    pub fn from_url(url: &str, token: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL such as http://127.0.0.1:8081"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!(
                "{url}: only http:// is supported (dials-load measures a server on this \
                 machine over plain loopback), not {other}://"
            ),
            None => bail!("{url}: give the whole URL, such as http://127.0.0.1:8081"),
        }
        let authority = uri
            .authority()
            .with_context(|| format!("{url}: the URL has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = loopback(authority.host(), port)?;
        let base = uri.path().trim_end_matches('/').to_owned();
        Self::build(addr, authority.as_str(), base, token)
    }

    /// A server this tool started itself, at the address it printed.
    pub fn at(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to connect to {addr}: it is not a loopback address");
        }
        Self::build(addr, &addr.to_string(), String::new(), token)
    }

    fn build(addr: SocketAddr, host: &str, base: String, token: &str) -> anyhow::Result<Self> {
        let token = token.trim();
        if token.is_empty() {
            bail!("the token is empty: pass --token (e.g. the contents of <data-dir>/admin.token)");
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token has characters that cannot be sent in a header")?;
        auth.set_sensitive(true);
        Ok(Self {
            addr,
            host: HeaderValue::from_str(host).context("the host cannot be sent in a header")?,
            base,
            auth,
        })
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `/api/v1/services/{service}/config`, checked once so the hot loop only clones it.
    pub fn config_uri(&self, service: &str) -> anyhow::Result<Uri> {
        let path = format!("{}/api/v1/services/{service}/config", self.base);
        path.parse()
            .with_context(|| format!("the service name {service:?} cannot be put in a URL path"))
    }

    /// Any path of the API (e.g. `/api/v1/tokens`), checked once.
    pub fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        format!("{}{path}", self.base)
            .parse()
            .with_context(|| format!("{path:?} cannot be a URL path"))
    }

    /// `POST uri` with a JSON body.
    pub fn post(&self, uri: &Uri, body: Bytes) -> anyhow::Result<Req> {
        Ok(self
            .request(Method::POST, uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))?)
    }

    /// `GET uri` with the bearer token.
    pub fn get(&self, uri: &Uri) -> anyhow::Result<Req> {
        Ok(self
            .request(Method::GET, uri.clone())
            .body(Full::new(Bytes::new()))?)
    }

    /// `PUT uri` with a JSON body; `create` adds `If-None-Match: *`.
    pub fn put(&self, uri: &Uri, body: Bytes, create: bool) -> anyhow::Result<Req> {
        let mut builder = self
            .request(Method::PUT, uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if create {
            builder = builder.header(IF_NONE_MATCH, HeaderValue::from_static("*"));
        }
        Ok(builder.body(Full::new(body))?)
    }

    /// `PUT uri` with a JSON body and `If-Match: "version"`: a compare-and-swap.
    #[cfg_attr(
        not(feature = "etcd"),
        allow(dead_code, reason = "used by versus-etcd")
    )]
    pub fn put_if_match(&self, uri: &Uri, body: Bytes, version: u64) -> anyhow::Result<Req> {
        Ok(self
            .request(Method::PUT, uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(IF_MATCH, HeaderValue::from_str(&format!("\"{version}\""))?)
            .body(Full::new(body))?)
    }

    /// `GET /health`, which needs no token.
    pub fn health(&self) -> anyhow::Result<Req> {
        let uri: Uri = format!("{}/health", self.base).parse()?;
        Ok(Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(HOST, self.host.clone())
            .body(Full::new(Bytes::new()))?)
    }

    fn request(&self, method: Method, uri: Uri) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
    }
}

/// The loopback address `host` names; any other host is an error.
fn loopback(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match bare {
        "127.0.0.1" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::1" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        h if h.eq_ignore_ascii_case("localhost") => ("localhost", port)
            .to_socket_addrs()
            .context("cannot resolve localhost")?
            .map(|a| a.ip())
            .find(IpAddr::is_loopback)
            .context("localhost does not resolve to a loopback address here")?,
        other => bail!(
            "refusing to connect to {other}: dials-load only measures a server on this machine; \
             use 127.0.0.1, localhost or [::1]"
        ),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted() {
        for url in [
            "http://127.0.0.1:8081",
            "http://localhost:8081/",
            "http://[::1]:8081",
        ] {
            let api = Api::from_url(url, "t").expect(url);
            assert!(api.addr().ip().is_loopback(), "{url}");
            assert_eq!(api.addr().port(), 8081);
        }
    }

    #[test]
    fn other_hosts_are_refused_by_name() {
        for url in [
            "http://10.0.0.1:8081",
            "http://127.0.0.2:8081",
            "http://example.com",
            "http://0.0.0.0:8081",
        ] {
            let err = Api::from_url(url, "t").expect_err(url).to_string();
            assert!(err.contains("refusing"), "{url}: {err}");
        }
    }

    #[test]
    fn https_and_empty_tokens_are_refused() {
        assert!(Api::from_url("https://127.0.0.1:8081", "t").is_err());
        assert!(Api::from_url("http://127.0.0.1:8081", " \n").is_err());
    }
}
