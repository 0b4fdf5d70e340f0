//! A client instance that dies without a clean disconnect is shown offline by its last will,
//! long before the instance timeout would say so. (The manager's own last will is in `mqtt.rs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::Mosquitto;
use crate::harness::{public_key, service_token};
use crate::process::{admin_token, create, get_json, start_with};

async fn instance_row(http: &reqwest::Client, base: &str, token: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = get_json(http, base, token, "/api/v1/services/tts/instances").await;
        if let Some(row) = list["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["instance"] == "pi-kitchen"))
            && row["status"] == want
        {
            return row.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_dies_is_shown_offline_by_its_last_will() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mqtt = broker.url();
    // An hour of silence before the timeout would mark it: offline sooner means the will did.
    let running = start_with(&data, &["--mqtt", &mqtt, "--instance-timeout", "3600"]).await;
    let base = running.base.clone();
    let token = admin_token(&data);
    let http = reqwest::Client::new();
    create(&http, &base, &token, "tts", json!({"voice": "amy"})).await;
    let client_token = service_token(&http, &base, &token, "tts").await;
    let key = public_key(&http, &base).await;

    // The client runs on a runtime of its own; dropping that runtime ends it the way a killed
    // process ends: its sockets close with no MQTT DISCONNECT and no goodbye report.
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (kill_tx, kill) = std::sync::mpsc::channel::<()>();
    let server = base.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime.block_on(async move {
            dials_client::Client::<crate::harness::Seq>::builder("tts")
                .server(server)
                .token(client_token)
                .mqtt(mqtt)
                .public_key(key)
                .instance("pi-kitchen")
                .register_schema(false)
                .start()
                .await
                .expect("the client starts")
        });
        started_tx.send(()).unwrap();
        let _ = kill.recv();
        runtime.shutdown_background();
        drop(client);
    });
    started.await.unwrap();
    let row = instance_row(&http, &base, &token, "applied").await;
    assert_eq!(row["version"], 1);

    kill_tx.send(()).unwrap();
    thread.join().unwrap();
    let row = instance_row(&http, &base, &token, "offline").await;
    assert_eq!(
        row["version"], 1,
        "the version it last ran stays shown: {row}"
    );
    drop(running);
}
