//! Live updates through the real manager and broker: callbacks, environment overrides, failed
//! callbacks, status reports, reconnects.

use std::collections::HashMap;
use std::time::Duration;

use dials_client::{Error, Origin};
use serde_json::json;

use crate::broker::Mosquitto;
use crate::helpers::{builder, manager, next, record, report_for, reports};

#[tokio::test]
async fn a_write_reaches_the_running_service_and_its_status_shows_in_the_instance_listing() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"voice": "amy", "volume": 50})).await;
    let token = m.service_token("tts").await;
    let mut status = reports(&broker, "tts").await;

    let dials = builder(&m, "tts")
        .token(token)
        .mqtt(broker.url())
        .start()
        .await
        .unwrap();
    assert_eq!(dials.get().voice, "amy");
    assert_eq!(dials.info().origin, Origin::Manager);
    let debug = format!("{dials:?}");
    assert!(
        !debug.contains("amy"),
        "Debug shows no config values: {debug}"
    );
    let mut changes = record(&dials);
    let mut rx = dials.subscribe();
    // The first report means the client is connected and subscribed.
    let first = report_for(&mut status, "tts", 1).await;
    assert_eq!(first["status"], "applied");

    let version = m.put("tts", json!({"voice": "bob", "volume": 60})).await;
    let new = next(&mut rx).await;
    assert_eq!((new.voice.as_str(), new.volume), ("bob", 60));
    assert_eq!(changes.recv().await.unwrap().voice, "bob");
    assert_eq!(dials.get().voice, "bob");
    assert_eq!(dials.info().version, version);

    let report = report_for(&mut status, "tts", version).await;
    assert_eq!(report["status"], "applied");
    assert_eq!(report["service"], "tts");
    assert_eq!(report["instance"], "test-1");
    assert_eq!(report["schema_hash"], dials.schema_hash());
    assert_eq!(report["overrides"], json!([]));
    assert!(report["at"].is_string());

    // The manager records reports asynchronously and announces nothing: look until it shows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listing = m.instances("tts").await;
        let row = listing["instances"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["instance"] == "test-1"))
            .cloned();
        if let Some(row) = row
            && row["version"] == version
        {
            assert_eq!(row["status"], "applied");
            assert_eq!(row["current"], true);
            assert_eq!(row["schema_hash"], dials.schema_hash());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance listing: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    dials.shutdown().await;
    assert!(matches!(dials.refresh().await, Err(Error::Shutdown)));
    assert_eq!(dials.get().voice, "bob", "get() keeps answering");
}

#[tokio::test]
async fn an_environment_override_wins_over_the_manager_and_survives_updates() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"voice": "from-manager", "volume": 50}))
        .await;
    let mut status = reports(&broker, "tts").await;
    let env = HashMap::from([("T_VOICE".to_owned(), "from-env".to_owned())]);
    let dials = builder(&m, "tts")
        .mqtt(broker.url())
        .env_source(env)
        .start()
        .await
        .unwrap();
    assert_eq!(dials.get().voice, "from-env");
    assert_eq!(dials.info().overrides, ["/voice"]);
    let first = report_for(&mut status, "tts", 1).await;
    assert_eq!(first["overrides"], json!(["/voice"]));

    let mut rx = dials.subscribe();
    let version = m
        .put("tts", json!({"voice": "new-from-manager", "volume": 70}))
        .await;
    let new = next(&mut rx).await;
    assert_eq!(new.volume, 70, "the manager's other keys apply");
    assert_eq!(new.voice, "from-env", "the environment still wins");
    let report = report_for(&mut status, "tts", version).await;
    assert_eq!(report["overrides"], json!(["/voice"]));
}

#[tokio::test]
async fn a_callback_that_panics_or_refuses_reports_failed_and_the_previous_config_stays() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"volume": 10})).await;
    let mut status = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    dials.on_change(|_old, new| {
        if new.volume == 13 {
            panic!("unlucky volume");
        }
        if new.volume == 66 {
            return Err("volume 66 is refused".into());
        }
        Ok(())
    });
    let mut rx = dials.subscribe();
    report_for(&mut status, "tts", 1).await;

    let v2 = m.put("tts", json!({"volume": 13})).await;
    let report = report_for(&mut status, "tts", v2).await;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("unlucky volume"),
        "{report}"
    );
    assert_eq!(dials.get().volume, 10, "the previous config stays");
    assert_eq!(dials.info().version, 1);

    let v3 = m.put("tts", json!({"volume": 66})).await;
    let report = report_for(&mut status, "tts", v3).await;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("volume 66 is refused"),
        "{report}"
    );
    assert_eq!(dials.get().volume, 10);

    let v4 = m.put("tts", json!({"volume": 20})).await;
    assert_eq!(next(&mut rx).await.volume, 20, "the client lives on");
    assert_eq!(
        report_for(&mut status, "tts", v4).await["status"],
        "applied"
    );
}

/// Through a broker with its stock settings (Nagle's algorithm on its sockets), each applied
/// report's PUBACK must not leave the next update waiting for the client's delayed TCP
/// acknowledgement (40 ms on Linux): updates sent one after the other each reach the service in
/// a few milliseconds, not in 30 to 40. The bound is loose, for a busy machine and a debug build;
/// the stall it catches is larger than it on every update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_updates_are_not_held_up_by_a_stock_broker() {
    let broker = Mosquitto::start_stock().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"volume": 0})).await;
    let mut status = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut status, "tts", 1).await;

    let mut took = Vec::new();
    for volume in 1..=25 {
        let sent = std::time::Instant::now();
        m.put("tts", json!({"volume": volume})).await;
        while next(&mut rx).await.volume != volume {}
        took.push(sent.elapsed());
    }
    // Every report still arrives, the last one last.
    let last = dials.info().version;
    assert_eq!(
        report_for(&mut status, "tts", last).await["status"],
        "applied"
    );
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "PUT → applied, median {median:?} over 25 updates in a row: {took:?}"
    );
}

#[tokio::test]
async fn after_the_broker_comes_back_the_client_reconnects_and_catches_up_over_rest() {
    let mut broker = Mosquitto::start().await;
    // The manager publishes nothing: only the REST re-read after the reconnect can bring v2.
    let m = manager(None).await;
    m.create("tts", json!({"voice": "one"})).await;
    let mut status = reports(&broker, "tts").await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    report_for(&mut status, "tts", 1).await;
    dials.refresh().await.unwrap();

    broker.stop().await;
    let v2 = m.put("tts", json!({"voice": "two"})).await;
    broker.restart().await;

    assert_eq!(next(&mut rx).await.voice, "two");
    assert_eq!(dials.info().version, v2);
    // The status follows on the new connection.
    let mut status = reports(&broker, "tts").await;
    assert_eq!(
        report_for(&mut status, "tts", v2).await["status"],
        "applied"
    );
}

/// Through a broker with its stock settings, the applied report the broker forwards to the
/// manager must not wait behind the PUBACK the broker just sent the manager for the envelope
/// (Nagle on the broker's socket, the manager's delayed TCP acknowledgement: 40 ms on Linux).
/// Updates one after the other, each once the last report was recorded and past the report
/// budget's pause between batches: the manager records each report within a few milliseconds
/// of the PUT, not 30 to 40 later. The bound is loose for a busy machine; the stall it catches
/// is larger than it on every update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_reports_are_recorded_without_waiting_on_a_stock_broker() {
    let broker = Mosquitto::start_stock().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"volume": 0})).await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let mut rx = dials.subscribe();
    let recorded = async |version: u64| loop {
        let listing = m.instances("tts").await;
        let applied = listing["instances"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["instance"] == "test-1" && r["version"] == version)
        });
        if applied {
            return;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let first = m.put("tts", json!({"volume": 1})).await;
    tokio::time::timeout(Duration::from_secs(10), recorded(first))
        .await
        .expect("the first report is recorded");

    let mut took = Vec::new();
    for volume in 2..=21 {
        // Past the report budget's pause between two batches (100 ms).
        tokio::time::sleep(Duration::from_millis(120)).await;
        let sent = std::time::Instant::now();
        let version = m.put("tts", json!({"volume": volume})).await;
        tokio::time::timeout(Duration::from_secs(10), recorded(version))
            .await
            .expect("the report is recorded");
        took.push(sent.elapsed());
    }
    while next(&mut rx).await.volume != 21 {}
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "PUT → report recorded, median {median:?} over 20 updates: {took:?}"
    );
}
