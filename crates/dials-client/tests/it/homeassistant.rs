//! Home Assistant's side of `--home-assistant`, played against a real manager and Mosquitto:
//! discovery of the demo `tts-worker`'s simple settings, a command that becomes a new version
//! the running service (the echo-service's config struct) applies, and commands that are
//! refused and change nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{manager_with, report_for, reports};
use crate::tts_config::TtsConfig;

fn demo(file: &str) -> Value {
    let path = format!(
        "{}/../../examples/tars/tts-worker.{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Collects retained discovery configs of `node` until `want` entities are there.
async fn discover(ha: &mut Subscriber, node: &str, want: usize) -> BTreeMap<String, Value> {
    let mut found = BTreeMap::new();
    while found.len() < want {
        let m = ha.next(15).await;
        let parts: Vec<&str> = m.topic.split('/').collect();
        if parts.len() == 5 && parts[2] == node && parts[4] == "config" && !m.payload.is_empty() {
            found.insert(format!("{}/{}", parts[1], parts[3]), m.json());
        }
    }
    found
}

#[tokio::test]
async fn home_assistant_discovers_simple_settings_and_its_commands_become_validated_writes() {
    let broker = Mosquitto::start().await;
    let m = manager_with(Some(&broker), |s| s.home_assistant = true).await;
    let r = m
        .req(Method::PUT, "/api/v1/services/tts-worker/schema")
        .json(&demo("schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let config = demo("config");
    let secret = config["eleven_api_key"].as_str().unwrap().to_owned();
    m.create("tts-worker", config.clone()).await;

    // Home Assistant subscribes to its discovery prefix and to the states.
    let mut ha = Subscriber::connect(broker.addr(), "homeassistant/#").await;
    let mut states = Subscriber::connect(broker.addr(), "dials/ha/+/+/state").await;
    let entities = discover(&mut ha, "dials_tts-worker", 3).await;
    assert_eq!(
        entities.keys().collect::<Vec<_>>(),
        [
            "number/volume_percent",
            "select/tts_provider",
            "text/piper_voice"
        ],
        "the simple settings, and never the secret one"
    );
    let volume = &entities["number/volume_percent"];
    assert_eq!(
        (volume["min"].clone(), volume["max"].clone()),
        (json!(0), json!(200))
    );
    assert_eq!(volume["device"]["identifiers"], json!(["dials_tts-worker"]));
    assert_eq!(
        entities["select/tts_provider"]["options"],
        json!(["piper", "elevenlabs"])
    );
    let command_topic = volume["command_topic"].as_str().unwrap().to_owned();
    let state_topic = volume["state_topic"].as_str().unwrap().to_owned();
    let state = states.next_on(&state_topic, 15).await;
    assert!(state.retain);
    assert_eq!(
        String::from_utf8(state.payload).unwrap(),
        config["volume_percent"].to_string()
    );

    // The service runs, with the echo-service's typed config.
    let mut status = reports(&broker, "tts-worker").await;
    let service = dials_client::Client::<TtsConfig>::builder("tts-worker")
        .server(&m.url)
        .token(m.token_for("tts-worker"))
        .public_key(m.signer.public_key_base64())
        .mqtt(broker.url())
        .instance("test-1")
        .start()
        .await
        .unwrap();
    assert_eq!(
        report_for(&mut status, "tts-worker", 1).await["status"],
        "applied"
    );
    let mut applied = service.subscribe();

    // Refused: out of range (the schema says so), not a number, not an option. Then a good one.
    for (topic, payload) in [
        (command_topic.clone(), "250"),
        (command_topic.clone(), "loud"),
        (
            entities["select/tts_provider"]["command_topic"]
                .as_str()
                .unwrap()
                .to_owned(),
            "espeak",
        ),
        (command_topic.clone(), "42"),
    ] {
        ha.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    let state = states.next_on(&state_topic, 15).await;
    assert_eq!(String::from_utf8(state.payload).unwrap(), "42");

    let current: Value = m
        .req(Method::GET, "/api/v1/services/tts-worker/config")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current["version"], 2,
        "one new version: the refused commands made none"
    );
    assert_eq!(current["updated_by"], "home-assistant");
    assert_eq!(current["config"]["volume_percent"], 42);

    // The service applies it.
    tokio::time::timeout(Duration::from_secs(15), async {
        while applied.borrow_and_update().volume_percent != 42 {
            applied.changed().await.unwrap();
        }
    })
    .await
    .expect("the service applies Home Assistant's change");
    assert_eq!(
        report_for(&mut status, "tts-worker", 2).await["status"],
        "applied"
    );

    // Audited under its actor, with the only change it made.
    let history: Value = m
        .req(
            Method::GET,
            "/api/v1/history?service=tts-worker&actor=home-assistant",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!(items[0]["key"], "/volume_percent");

    // Nothing Home Assistant can see holds the secret.
    ha.client.subscribe("#", QoS::AtLeastOnce).await.unwrap();
    let mut seen = 0;
    while let Ok(Some(m)) =
        tokio::time::timeout(Duration::from_millis(500), ha.messages.recv()).await
    {
        seen += 1;
        assert!(
            !String::from_utf8_lossy(&m.payload).contains(&secret),
            "{} carries the secret",
            m.topic
        );
    }
    assert!(seen > 0);
    service.shutdown().await;
}
