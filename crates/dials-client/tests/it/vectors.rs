//! The client against the contract's test vectors (`dials-wire/tests/vectors`): every envelope
//! gets the verdict the vector names from the check the client applies to MQTT updates, and
//! every last-known-good file is used, or refused, by a real client starting while the manager
//! is away.

use std::time::Duration;

use dials_client::{Client, Error, Origin};
use dials_wire::envelope::parse_public_key;
use dials_wire::mqtt::{Receiver, UpdateVerdict, judge_update};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::broker::free_port;
use crate::helpers::TestConfig;

fn vectors(name: &str) -> Value {
    let path = format!(
        "{}/../dials-wire/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("JSON")
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

#[test]
fn every_envelope_vector_gets_its_verdict_from_the_clients_check() {
    let file = vectors("envelopes.json");
    let r = &file["receiver"];
    let trusted: Vec<_> = r["trusted_public_keys_base64"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| parse_public_key(k.as_str().expect("key")).expect("a public key"))
        .collect();
    let epoch = str_of(r, "epoch").parse().expect("a UUID");
    let receiver = Receiver {
        service: str_of(r, "service"),
        epoch: Some(epoch),
        version: r["version"].as_u64().expect("version"),
        trusted: &trusted,
    };
    let now = OffsetDateTime::parse(str_of(r, "now"), &Rfc3339).expect("RFC 3339");
    let all = file["vectors"].as_array().expect("vectors");
    assert!(all.len() >= 10, "the envelope vectors are all there");
    for v in all {
        let name = str_of(v, "name");
        let verdict = judge_update(str_of(v, "payload").as_bytes(), &receiver, now);
        assert_eq!(verdict.code(), str_of(v, "verdict"), "{name}");
        if let UpdateVerdict::Apply(envelope) = verdict {
            assert_eq!(envelope.version, v["applies"]["version"], "{name}");
            assert_eq!(envelope.config, v["applies"]["config"], "{name}");
        }
    }
}

#[tokio::test]
async fn every_lkg_vector_is_used_or_refused_by_a_client_starting_without_its_manager() {
    let file = vectors("lkg.json");
    let key = hex::decode(str_of(&file["key"], "key_hex")).expect("hex");
    let service = str_of(&file, "service");
    let dir = tempfile::tempdir().unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    for v in file["vectors"].as_array().expect("vectors") {
        let name = str_of(v, "name");
        let path = dir.path().join(format!("{name}.lkg"));
        std::fs::write(&path, str_of(v, "file")).unwrap();
        let started = Client::<TestConfig>::builder(service)
            .server(&down)
            .token("t")
            .register_schema(false)
            .start_timeout(Duration::from_millis(500))
            .lkg_path(&path)
            .lkg_key(key.clone())
            .env_source(Default::default())
            .start()
            .await;
        let expect = &v["expect"];
        if expect["valid"] == true {
            let client = started.unwrap_or_else(|e| panic!("{name}: {e}"));
            let info = client.info();
            assert_eq!(info.origin, Origin::Lkg, "{name}");
            assert_eq!(info.version, expect["version"], "{name}");
            assert_eq!(
                info.epoch.map(|e| e.to_string()),
                expect["epoch"].as_str().map(str::to_owned),
                "{name}"
            );
            let config = client.get();
            assert_eq!(config.voice, expect["config"]["voice"], "{name}");
            assert_eq!(config.volume, expect["config"]["volume"], "{name}");
            client.shutdown().await;
        } else {
            match started {
                Err(Error::NoConfig { lkg, .. }) => {
                    assert!(lkg.contains("is refused"), "{name}: {lkg}")
                }
                Ok(_) => panic!("{name}: the client started from a file it must refuse"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}
