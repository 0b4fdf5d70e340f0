//! The problem bodies clients see, whole: a snapshot of each kind a client must be able to act
//! on (which field, which version), so any change to their shape shows in review.

use insta::assert_json_snapshot;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn the_problem_bodies_a_client_acts_on_keep_their_shape() {
    let app = spawn_app().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "vad_threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "language": {"type": "string", "enum": ["en", "de"]}
        },
        "additionalProperties": false
    });
    let r = app
        .req(Method::PUT, "/api/v1/services/stt-worker/schema")
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.put_config(
        "stt-worker",
        json!({"config": {"vad_threshold": 0.5, "language": "en"}}),
    )
    .await;

    let invalid = app
        .put_config(
            "stt-worker",
            json!({"config": {"vad_threshold": 7, "language": "fr", "extra": true}}),
        )
        .await;
    let invalid: Value = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_json_snapshot!("validation_failed", invalid);

    let stale = app
        .put_config(
            "stt-worker",
            json!({"config": {"vad_threshold": 0.2}, "expected_version": 7}),
        )
        .await;
    let stale: Value = problem(stale, StatusCode::CONFLICT).await;
    assert_json_snapshot!("version_conflict", stale);

    let weak = app
        .req(Method::PATCH, "/api/v1/services/stt-worker/config")
        .header("If-Match", "W/\"1\"")
        .json(&json!({"config": {"vad_threshold": 0.2}}))
        .send()
        .await
        .unwrap();
    let weak: Value = problem(weak, StatusCode::PRECONDITION_FAILED).await;
    assert_json_snapshot!("precondition_failed", weak);

    let form = app
        .req(Method::PATCH, "/api/v1/services/stt-worker/config")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("config=1")
        .send()
        .await
        .unwrap();
    let form: Value = problem(form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_json_snapshot!("unsupported_media_type", form);

    let anonymous = app
        .client
        .get(app.url("/api/v1/services"))
        .send()
        .await
        .unwrap();
    let anonymous: Value = problem(anonymous, StatusCode::UNAUTHORIZED).await;
    assert_json_snapshot!("unauthorized", anonymous);
}
