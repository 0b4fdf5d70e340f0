//! `GET /metrics` of the real binary after a scripted workload: writes, a conflict, a
//! validation failure, an applied report and a broker outage each move the metrics they must,
//! and every metric the Grafana dashboard charts is there.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::json;

use crate::broker::{Mosquitto, Subscriber};
use crate::process::{admin_token, create, start_with};

/// The samples of one exposition, as `(name{labels}, value)` lines.
struct Scrape(String);

impl Scrape {
    /// The value of the sample whose name and labels are exactly `series` (labels in the
    /// order the exporter writes them), or 0 when it is absent.
    fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }

    /// Every metric family named in a `# TYPE` line.
    fn families(&self) -> BTreeSet<String> {
        self.0
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect()
    }
}

async fn scrape(client: &reqwest::Client, base: &str) -> Scrape {
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Scrape(r.text().await.unwrap())
}

/// Scrapes until `done` holds, for what the manager does after answering (a report recorded,
/// a reconnect): failing after ten seconds.
async fn scrape_until(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(client, base).await;
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not show in /metrics:\n{}",
            s.0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const CONFIG_ROUTE: &str = "/api/v1/services/{service}/config";

#[tokio::test]
async fn metrics_follow_writes_conflicts_validation_reports_and_a_broker_outage() {
    let mut broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let running = start_with(dir.path(), &["--mqtt", &url]).await;
    let base = running.base.clone();
    let token = admin_token(dir.path());
    let http = reqwest::Client::new();
    let mut health = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    assert_eq!(health.next(10).await.json()["ok"], true);

    // Connected counts once the subscribing connection is subscribed too.
    let before = scrape_until(&http, &base, "the broker connection", |s| {
        s.value("dials_mqtt_connected") == 1.0
    })
    .await;
    assert_eq!(before.value("dials_mode{mode=\"normal\"}"), 1.0);
    assert!(before.value("dials_database_size_bytes") > 0.0);

    // A schema, a first document, and a patch: two committed writes.
    let r = http
        .put(format!("{base}/api/v1/services/speaker/schema"))
        .bearer_auth(&token)
        .json(&json!({"type": "object", "properties": {
            "volume": {"type": "integer", "minimum": 0, "maximum": 200, "default": 100}}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    create(&http, &base, &token, "speaker", json!({"volume": 50})).await;
    let patch = |body: serde_json::Value| {
        http.patch(format!("{base}/api/v1/services/speaker/config"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert_eq!(
        patch(json!({"config": {"volume": 60}, "expected_version": 1}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A stale version: 409. A value out of range: 422.
    assert_eq!(
        patch(json!({"config": {"volume": 70}, "expected_version": 1}))
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        patch(json!({"config": {"volume": 250}}))
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A bad token: a denial.
    let r = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth("dials_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // An instance reports version 2 applied.
    health
        .client
        .publish(
            "config/applied/speaker/pi-1",
            QoS::AtLeastOnce,
            true,
            serde_json::to_vec(
                &json!({"service": "speaker", "instance": "pi-1", "version": 2,
                "status": "applied", "at": "2026-01-01T00:00:00Z"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let after = scrape_until(&http, &base, "the applied report", |s| {
        s.value("dials_service_instances_current{service=\"speaker\"}") == 1.0
    })
    .await;

    assert_eq!(
        after.value("dials_config_writes_total{kind=\"put\"}")
            - before.value("dials_config_writes_total{kind=\"put\"}"),
        1.0
    );
    assert_eq!(
        after.value("dials_config_writes_total{kind=\"patch\"}")
            - before.value("dials_config_writes_total{kind=\"patch\"}"),
        1.0
    );
    assert_eq!(
        after.value("dials_write_conflicts_total{status=\"409\"}"),
        1.0
    );
    assert_eq!(after.value("dials_validation_failures_total"), 1.0);
    assert_eq!(
        after.value("dials_auth_failures_total{status=\"401\"}"),
        1.0
    );
    assert_eq!(
        after.value(&format!(
            "dials_http_requests_total{{route=\"{CONFIG_ROUTE}\",method=\"PATCH\",status=\"409\"}}"
        )),
        1.0
    );
    assert_eq!(
        after.value(&format!(
            "dials_http_requests_total{{route=\"{CONFIG_ROUTE}\",method=\"PATCH\",status=\"200\"}}"
        )),
        1.0
    );
    assert_eq!(
        after.value(&format!(
            "dials_http_request_duration_seconds_count{{route=\"{CONFIG_ROUTE}\",method=\"PATCH\"}}"
        )),
        3.0,
        "every PATCH is timed, whatever its answer"
    );
    assert!(
        after.value("dials_store_commit_duration_seconds_count") >= 2.0,
        "both commits are timed"
    );
    assert!(
        after.value("dials_store_commit_duration_seconds_bucket{le=\"+Inf\"}") >= 2.0,
        "a histogram with buckets, not a summary"
    );
    assert_eq!(
        after.value("dials_applied_reports_total{status=\"applied\"}"),
        1.0
    );
    assert_eq!(
        after.value("dials_service_instances{service=\"speaker\"}"),
        1.0
    );
    assert_eq!(
        after.value("dials_service_version{service=\"speaker\"}"),
        2.0
    );
    assert!(
        after.value("dials_mqtt_publishes_total") >= 2.0,
        "the two envelopes at least"
    );
    assert!(after.value("dials_mqtt_puback_duration_seconds_count") >= 2.0);
    assert!(
        !after.0.contains("speaker\",method") && !after.0.contains("/services/speaker/"),
        "no service name in request metrics"
    );

    // The broker goes away: a write waits in the outbox, and the metrics say so.
    broker.stop().await;
    let down = scrape_until(&http, &base, "the lost broker", |s| {
        s.value("dials_mqtt_connected") == 0.0
    })
    .await;
    assert_eq!(down.value("dials_mqtt_disconnects_total"), 1.0);
    assert_eq!(
        patch(json!({"config": {"volume": 80}}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let waiting = scrape(&http, &base).await;
    assert_eq!(waiting.value("dials_outbox_backlog"), 1.0);
    assert!(waiting.value("dials_outbox_oldest_pending_seconds") >= 0.0);

    // It comes back: the manager reconnects and the backlog drains.
    broker.restart().await;
    let back = scrape_until(&http, &base, "the reconnect and the drained outbox", |s| {
        s.value("dials_mqtt_connected") == 1.0 && s.value("dials_outbox_backlog") == 0.0
    })
    .await;
    assert_eq!(back.value("dials_mqtt_reconnects_total"), 1.0);
    assert_eq!(back.value("dials_mqtt_connects_total"), 2.0);
    assert_eq!(back.value("dials_outbox_oldest_pending_seconds"), 0.0);

    // Every metric the dashboard charts exists.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/grafana/dials.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let families = back.families();
    let mut charted = BTreeSet::new();
    collect_metric_names(&dashboard, &mut charted);
    assert!(charted.len() > 15, "{charted:?}");
    for name in &charted {
        let family = name.strip_suffix("_bucket").unwrap_or(name);
        assert!(
            families.contains(family),
            "the dashboard charts {name}, which /metrics does not have"
        );
    }
    running.signal("TERM").await;
}

/// Every `dials_…` name in the dashboard's queries.
fn collect_metric_names(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(expr)) => {
                        let mut rest = expr.as_str();
                        while let Some(at) = rest.find("dials_") {
                            let tail = &rest[at..];
                            let end = tail
                                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .unwrap_or(tail.len());
                            out.insert(tail[..end].to_owned());
                            rest = &tail[end..];
                        }
                    }
                    _ => collect_metric_names(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_metric_names(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_with(dir.path(), &["--metrics-require-token"]).await;
    let token = admin_token(dir.path());
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", running.base);
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let with_token = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(with_token.status(), StatusCode::OK);
    assert!(
        with_token
            .text()
            .await
            .unwrap()
            .contains("dials_http_requests_total")
    );
    running.signal("TERM").await;
}

#[tokio::test]
async fn metrics_need_no_token_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_with(dir.path(), &[]).await;
    let r = reqwest::get(format!("{}/metrics", running.base))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("# TYPE dials_build_info gauge"), "{text}");
    running.signal("TERM").await;
}
