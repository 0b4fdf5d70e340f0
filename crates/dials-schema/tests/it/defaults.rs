//! Defaults on the fixtures: missing keys are filled, nested objects included, present values
//! never replaced.

use dials_domain::KeyPath;
use serde_json::json;

use crate::support::{SERVICES, config, document, schema};

#[test]
fn an_empty_document_gets_every_default_of_its_schema() {
    for service in SERVICES {
        let schema = schema(service);
        let filled = schema.apply_defaults(&document(json!({})));
        for setting in schema.settings() {
            assert_eq!(
                filled.get(&setting.key),
                setting.default.as_ref(),
                "{service}{}",
                setting.key
            );
        }
    }
}

#[test]
fn defaults_fill_a_nested_object_the_document_lacks() {
    let filled = schema("global").apply_defaults(&document(json!({"log_level": "ERROR"})));
    assert_eq!(
        filled.into_value(),
        json!({
            "log_level": "ERROR",
            "mqtt": {
                "host": "127.0.0.1", "port": 1883, "username": null, "keepalive": 60,
                "reconnect_min_delay": 0.5, "reconnect_max_delay": 5.0, "heartbeat_interval": 5.0
            },
            "online_announce_text": "System online."
        })
    );
}

#[test]
fn defaults_complete_a_partly_set_nested_object_without_touching_its_values() {
    let doc = document(json!({"mqtt": {"host": "broker", "port": 1884, "password": "p"}}));
    let filled = schema("global").check(&doc).expect("valid");
    let get = |k: &str| filled.get(&KeyPath::parse(k).expect("pointer")).cloned();
    assert_eq!(get("/mqtt/host"), Some(json!("broker")));
    assert_eq!(get("/mqtt/port"), Some(json!(1884)));
    assert_eq!(get("/mqtt/password"), Some(json!("p")));
    assert_eq!(get("/mqtt/keepalive"), Some(json!(60)));
    assert_eq!(
        get("/mqtt/url"),
        None,
        "a secret without a default stays unset"
    );
}

#[test]
fn a_complete_document_is_left_exactly_as_it_was() {
    for service in SERVICES {
        // Complete: the example, and the default of each key it leaves to global.
        let schema = schema(service);
        let mut complete = config(service).into_value();
        for setting in schema.settings().iter().filter(|s| s.global.is_some()) {
            let name = setting.key.to_string();
            complete[name.trim_start_matches('/')] = setting.default.clone().unwrap_or_default();
        }
        let complete = document(complete);
        assert_eq!(schema.apply_defaults(&complete), complete, "{service}");
    }
}

#[test]
fn a_present_null_or_invalid_value_is_never_replaced_by_its_default() {
    let schema = schema("global");
    let filled =
        schema.apply_defaults(&document(json!({"log_level": null, "mqtt": {"port": "x"}})));
    assert_eq!(
        filled.get(&KeyPath::parse("/log_level").expect("pointer")),
        Some(&json!(null))
    );
    assert_eq!(
        filled.get(&KeyPath::parse("/mqtt/port").expect("pointer")),
        Some(&json!("x"))
    );
}

#[test]
fn every_example_value_differs_from_its_default_as_the_readme_says() {
    for service in SERVICES {
        let schema = schema(service);
        let example = config(service);
        for setting in schema.settings() {
            if let Some(default) = &setting.default {
                assert_ne!(
                    example.get(&setting.key),
                    Some(default),
                    "{service}{}",
                    setting.key
                );
            }
        }
    }
}
