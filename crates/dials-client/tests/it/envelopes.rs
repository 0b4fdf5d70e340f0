//! What the client does with MQTT updates it did not get from the manager: the test publishes
//! them itself (the manager here publishes nothing), signed with the manager's key or not.

use dials_wire::EnvelopeSigner;
use rumqttc::QoS;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{builder, manager, next, record, report_for, reports, sign};

const TOPIC: &str = "config/updated/tts";

async fn publish(sub: &Subscriber, payload: Vec<u8>) {
    sub.client
        .publish(TOPIC, QoS::AtLeastOnce, true, payload)
        .await
        .unwrap();
}

#[tokio::test]
async fn forged_tampered_foreign_and_replayed_updates_are_ignored() {
    let broker = Mosquitto::start().await;
    let m = manager(None).await;
    let epoch = m.create("tts", json!({"voice": "v1"})).await;
    let mut sub = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut changes = record(&dials);
    report_for(&mut sub, "tts", 1).await;

    // Signed by another key.
    let forger = EnvelopeSigner::from_seed(&[9; 32]);
    publish(
        &sub,
        sign(&forger, "tts", 2, epoch, json!({"voice": "forged"}), 0),
    )
    .await;
    // Signed by another key that claims our key id.
    let mut claimed = forger
        .sign(
            "tts",
            2,
            2,
            json!({"voice": "claimed"}),
            epoch,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    claimed.key_id = m.signer.key_id().to_owned();
    publish(&sub, claimed.to_bytes()).await;
    // Signed by the manager, then altered: the config, or the version.
    let genuine = m.envelope("tts", 2, epoch, json!({"voice": "genuine"}));
    let mut altered: Value = serde_json::from_slice(&genuine).unwrap();
    altered["config"]["voice"] = json!("tampered");
    publish(&sub, serde_json::to_vec(&altered).unwrap()).await;
    let mut altered: Value = serde_json::from_slice(&genuine).unwrap();
    altered["version"] = json!(99);
    publish(&sub, serde_json::to_vec(&altered).unwrap()).await;
    // Signed by the manager, but from a database life the client does not know.
    publish(
        &sub,
        m.envelope("tts", 2, Uuid::new_v4(), json!({"voice": "foreign-epoch"})),
    )
    .await;
    // Signed by the manager, for another service.
    publish(
        &sub,
        m.envelope("router", 2, epoch, json!({"voice": "other-service"})),
    )
    .await;
    publish(&sub, b"not an envelope".to_vec()).await;

    // A genuine update is applied; an older or repeated one after it is not.
    publish(&sub, m.envelope("tts", 2, epoch, json!({"voice": "good"}))).await;
    publish(
        &sub,
        m.envelope("tts", 1, epoch, json!({"voice": "replayed"})),
    )
    .await;
    publish(
        &sub,
        m.envelope("tts", 2, epoch, json!({"voice": "repeated"})),
    )
    .await;
    publish(&sub, m.envelope("tts", 3, epoch, json!({"voice": "final"}))).await;

    assert_eq!(changes.recv().await.unwrap().voice, "good");
    assert_eq!(changes.recv().await.unwrap().voice, "final");
    assert_eq!(dials.get().voice, "final");
    assert_eq!(dials.info().version, 3);
    // Only real versions were applied; the update signed by a key nothing vouches for was
    // reported rejected, saying why.
    loop {
        let m = sub.next_on("config/applied/tts/test-1", 15).await;
        let report = m.json();
        if report["status"] == "rejected" {
            assert!(
                report["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("untrusted signing key")),
                "{report}"
            );
            continue;
        }
        assert_eq!(report["status"], "applied", "{report}");
        assert!([2, 3].contains(&report["version"].as_u64().unwrap()));
        if report["version"] == 3 {
            break;
        }
    }
    assert!(changes.try_recv().is_err(), "nothing else was applied");
}

#[tokio::test]
async fn a_stale_update_is_not_applied_and_the_config_is_read_over_rest_instead() {
    let broker = Mosquitto::start().await;
    let m = manager(None).await;
    let epoch = m.create("tts", json!({"voice": "one"})).await;
    let mut sub = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut sub, "tts", 1).await;
    // Let the re-read that follows the connect finish first, so only the stale update can
    // cause the next one.
    dials.refresh().await.unwrap();

    let v2 = m.put("tts", json!({"voice": "from-rest"})).await;
    // A genuine envelope for the same version, but issued ten minutes ago.
    let stale = sign(
        &m.signer,
        "tts",
        v2,
        epoch,
        json!({"voice": "from-mqtt"}),
        600,
    );
    publish(&sub, stale).await;

    assert_eq!(next(&mut rx).await.voice, "from-rest");
    assert_eq!(dials.info().version, v2);
}

#[tokio::test]
async fn an_update_carrying_secrets_is_read_over_rest_and_secrets_never_reach_the_lkg_file() {
    let broker = Mosquitto::start().await;
    let m = manager(None).await;
    let epoch = m.create("tts", json!({"voice": "one"})).await;
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("tts.lkg");
    let mut sub = reports(&broker, "tts").await;
    let dials = builder(&m, "tts")
        .mqtt(broker.url())
        .lkg_path(&lkg)
        .start()
        .await
        .unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut sub, "tts", 1).await;
    dials.refresh().await.unwrap();

    let v2 = m
        .put("tts", json!({"voice": "from-rest", "api_key": "real-key"}))
        .await;
    publish(
        &sub,
        m.envelope(
            "tts",
            v2,
            epoch,
            json!({"voice": "from-mqtt", "api_key": {"$secret": 1}}),
        ),
    )
    .await;

    let cfg = next(&mut rx).await;
    assert_eq!(cfg.voice, "from-rest");
    assert_eq!(cfg.api_key.as_ref().unwrap().expose(), "real-key");
    assert_eq!(format!("{:?}", cfg.api_key), "Some(********)");
    // The report follows the LKG write.
    report_for(&mut sub, "tts", v2).await;
    let file = std::fs::read_to_string(&lkg).unwrap();
    assert!(file.contains("from-rest"), "{file}");
    assert!(!file.contains("real-key"), "{file}");
}

#[tokio::test]
async fn an_update_naming_secrets_the_client_holds_applies_from_mqtt_directly() {
    let broker = Mosquitto::start().await;
    let m = manager(None).await;
    let epoch = m.create("tts", json!({"voice": "one"})).await;
    let mut sub = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut sub, "tts", 1).await;
    // The manager is at version 2 with the secret, and the client has read it.
    let v2 = m
        .put("tts", json!({"voice": "two", "api_key": "real-key"}))
        .await;
    dials.refresh().await.unwrap();
    assert_eq!(
        next(&mut rx).await.api_key.as_ref().unwrap().expose(),
        "real-key"
    );

    // Version 3 exists only on the wire: a REST read would find nothing newer than 2, so the
    // config below can only have come from the envelope, with the held secret filled in.
    publish(
        &sub,
        m.envelope(
            "tts",
            v2 + 1,
            epoch,
            json!({"voice": "from-mqtt", "api_key": {"$secret": v2}}),
        ),
    )
    .await;
    let cfg = next(&mut rx).await;
    assert_eq!(cfg.voice, "from-mqtt");
    assert_eq!(cfg.api_key.as_ref().unwrap().expose(), "real-key");
    assert_eq!(
        report_for(&mut sub, "tts", v2 + 1).await["status"],
        "applied"
    );
}

#[tokio::test]
async fn a_version_that_does_not_fit_the_struct_is_rejected_and_the_previous_config_stays() {
    let broker = Mosquitto::start().await;
    let m = manager(None).await;
    let epoch = m.create("tts", json!({"volume": 10})).await;
    let mut sub = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut sub, "tts", 1).await;

    publish(&sub, m.envelope("tts", 2, epoch, json!({"volume": 500}))).await;
    let report = report_for(&mut sub, "tts", 2).await;
    assert_eq!(report["status"], "rejected", "{report}");
    assert!(
        report["error"].as_str().unwrap().starts_with("/volume: "),
        "{report}"
    );
    publish(&sub, m.envelope("tts", 3, epoch, json!({"voice": 5}))).await;
    let report = report_for(&mut sub, "tts", 3).await;
    assert_eq!(report["status"], "rejected", "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("/voice"),
        "{report}"
    );
    assert_eq!(dials.get().volume, 10);
    assert_eq!(dials.info().version, 1);

    publish(&sub, m.envelope("tts", 4, epoch, json!({"volume": 20}))).await;
    assert_eq!(next(&mut rx).await.volume, 20);
    assert_eq!(report_for(&mut sub, "tts", 4).await["status"], "applied");
}
