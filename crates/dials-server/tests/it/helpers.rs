//! `spawn_app()`: the real application on a free port, with typed helpers for the calls tests
//! make.

use std::net::SocketAddr;
use std::path::PathBuf;

use dials_server::{AppState, Application, ServerSettings};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub address: SocketAddr,
    pub token: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub data_dir: PathBuf,
    // Kept alive for the test's duration; removed on drop.
    _dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ServerSettings::local(dir.path().join("data"));
    let mut app = spawn_with(settings).await;
    app._dir = Some(dir);
    app
}

pub async fn spawn_with(settings: ServerSettings) -> TestApp {
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = app.address();
    let state = app.state().clone();
    let token = std::fs::read_to_string(data_dir.join("admin.token"))
        .expect("first start writes admin.token")
        .trim()
        .to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        token,
        client: reqwest::Client::new(),
        state,
        data_dir,
        _dir: None,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// A request with the admin token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// `GET path` with the admin token, answered 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn get_config(&self, service: &str) -> Response {
        self.req(Method::GET, &format!("/api/v1/services/{service}/config"))
            .send()
            .await
            .unwrap()
    }

    pub async fn put_config(&self, service: &str, body: Value) -> Response {
        self.req(Method::PUT, &format!("/api/v1/services/{service}/config"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a service with `If-None-Match: *` and returns its answer.
    pub async fn create(&self, service: &str, config: Value) -> Value {
        let r = self
            .req(Method::PUT, &format!("/api/v1/services/{service}/config"))
            .header("If-None-Match", "*")
            .json(&json!({ "config": config }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "create {service}");
        r.json().await.unwrap()
    }

    pub async fn patch_config(&self, service: &str, body: Value) -> Response {
        self.req(Method::PATCH, &format!("/api/v1/services/{service}/config"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
        self._dir.take()
    }
}

/// Creates a token with this role (and service scope) and returns its secret.
pub async fn token(app: &TestApp, name: &str, role: &str, service: Option<&str>) -> String {
    let mut body = json!({"name": name, "role": role});
    if let Some(s) = service {
        body["service"] = json!(s);
    }
    let r = app
        .req(Method::POST, "/api/v1/tokens")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "create {name}");
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts a problem+json answer with this status and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem has {field}: {body}");
    }
    body
}
