//! The manager sees an instance come and go: a client that stops says so on its report topic
//! (a client that dies leaves the same message as its last will).

use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::Mosquitto;
use crate::helpers::{builder, manager};

async fn instance_status(m: &crate::helpers::Manager, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let list = m.instances("tts").await;
        if let Some(row) = list["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["instance"] == "test-1"))
            && row["status"] == want
        {
            return row.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_is_shown_offline_and_back_when_it_returns() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("tts", json!({"voice": "amy"})).await;
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    let row = instance_status(&m, "applied").await;
    assert_eq!(row["version"], 1);
    dials.shutdown().await;
    let row = instance_status(&m, "offline").await;
    assert_eq!(row["version"], 1, "the version it last ran stays shown");
    let dials = builder(&m, "tts").mqtt(broker.url()).start().await.unwrap();
    instance_status(&m, "applied").await;
    dials.shutdown().await;
}
