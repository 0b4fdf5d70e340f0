//! The embedded web UI: its page at `/`, deep links answered with the same page, hashed
//! assets cached for good, and API paths that stay problem+json.

use reqwest::StatusCode;

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn the_root_serves_the_ui_page_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<div id=\"app\">"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from another host: {html}"
    );
}

#[tokio::test]
async fn a_deep_link_answers_the_same_page_so_the_ui_can_route_it() {
    let app = spawn_app().await;
    let root = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/services/router?key=/router_wake_window_sec"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), root);
}

#[tokio::test]
async fn a_hashed_asset_is_served_with_its_type_and_cached_for_a_year() {
    let app = spawn_app().await;
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html loads a script");
    assert!(script.starts_with("/assets/"), "{script}");
    let r = app.client.get(app.url(script)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(!r.bytes().await.unwrap().is_empty());
    // A hashed asset that does not exist is a 404, never the page.
    let r = app
        .client
        .get(app.url("/assets/gone-1234.js"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_unknown_api_path_stays_a_problem_json_404() {
    let app = spawn_app().await;
    for path in ["/api/v1/nope", "/api/v2/services", "/api"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        problem(r, StatusCode::NOT_FOUND).await;
    }
    // Only reads fall back to the page.
    let r = app
        .client
        .post(app.url("/services/router"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}
