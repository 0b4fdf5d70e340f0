//! The example service's struct mirrors the demo fleet's `tts-worker`: its derived schema says
//! what the hand-written one says, the manager takes it over the stored config, and the demo
//! config reads into it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::manager;
use crate::tts_config::TtsConfig;

fn demo(file: &str) -> Value {
    let path = format!(
        "{}/../../examples/tars/tts-worker.{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_example_struct_derives_the_demo_fleets_tts_worker_schema() {
    let demo = demo("schema");
    let derived = schemars::schema_for!(TtsConfig).to_value();
    for key in ["title", "description", "type", "additionalProperties"] {
        assert_eq!(derived[key], demo[key], "{key}");
    }
    let (want, got) = (
        demo["properties"].as_object().unwrap(),
        derived["properties"].as_object().unwrap(),
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, want) in want {
        let got = &got[name];
        for (keyword, value) in want.as_object().unwrap() {
            let derived = &got[keyword];
            // A secret that may be absent is nullable in Rust (`Option<SecretString>`).
            let nullable = keyword == "type" && *derived == json!([value, "null"]);
            assert!(
                derived == value || nullable,
                "{name}.{keyword}: {derived} != {value}"
            );
        }
        // What schemars adds beyond the demo is only a numeric `format`.
        for keyword in got.as_object().unwrap().keys() {
            assert!(
                want.get(keyword).is_some() || keyword == "format",
                "{name} has an extra {keyword}"
            );
        }
    }
}

#[tokio::test]
async fn the_example_struct_registers_over_the_demo_schema_and_reads_the_demo_config() {
    let m = manager(None).await;
    let r = m
        .req(Method::PUT, "/api/v1/services/tts-worker/schema")
        .json(&demo("schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    m.create("tts-worker", demo("config")).await;

    let dials = dials_client::Client::<TtsConfig>::builder("tts-worker")
        .server(&m.url)
        .token(m.token_for("tts-worker"))
        .start()
        .await
        .unwrap();
    let registered: Value = m
        .req(Method::GET, "/api/v1/services/tts-worker/schema")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        registered["hash"],
        dials.schema_hash(),
        "the manager took it"
    );

    let cfg = dials.get();
    let config = demo("config");
    assert_eq!(cfg.piper_voice, config["piper_voice"]);
    assert_eq!(cfg.tts_aggregate_timeout_sec, 1.5);
    assert_eq!(
        cfg.eleven_api_key.as_ref().unwrap().expose().as_str(),
        config["eleven_api_key"]
    );
    // Printed, the secret is masked and everything else is as stored.
    let mut printed = serde_json::to_value(&*cfg).unwrap();
    assert_eq!(printed["eleven_api_key"], "********");
    printed["eleven_api_key"] = config["eleven_api_key"].clone();
    // The demo config leaves `log_level` to global, which has no document here: the default.
    assert_eq!(printed["log_level"], "INFO");
    printed.as_object_mut().unwrap().remove("log_level");
    assert_eq!(printed, config);
}
