//! The settings catalogue of the fixtures: counts, secrets and annotations as the README
//! states them.

use dials_domain::KeyPath;
use dials_schema::{Complexity, Setting};

use crate::support::{Counts, SERVICES, config, raw_schema, readme_counts, schema};

fn counts_of(service: &str, settings: &[Setting]) -> Counts {
    let count = |f: &dyn Fn(&Setting) -> bool| settings.iter().filter(|s| f(s)).count();
    Counts {
        service: service.to_owned(),
        settings: settings.len(),
        simple: count(&|s| s.complexity == Complexity::Simple),
        advanced: count(&|s| s.complexity == Complexity::Advanced),
        secret: count(&|s| s.secret),
        restart: count(&|s| s.restart_required),
        secret_keys: settings
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.key.to_string())
            .collect(),
    }
}

#[test]
fn the_catalogue_counts_match_the_readme_for_every_service() {
    let expected = readme_counts();
    assert_eq!(
        expected.len(),
        SERVICES.len() + 1,
        "one row per service plus the total"
    );
    for row in expected.iter().filter(|row| row.service != "total") {
        let actual = counts_of(&row.service, schema(&row.service).settings());
        assert_eq!(&actual, row);
    }
}

#[test]
fn the_catalogue_finds_seventy_one_settings_in_seven_services_as_the_readme_totals() {
    let total = readme_counts()
        .into_iter()
        .find(|row| row.service == "total")
        .expect("total row");
    let all: Vec<Setting> = SERVICES
        .iter()
        .flat_map(|s| schema(s).settings().to_vec())
        .collect();
    let mut actual = counts_of("total", &all);
    actual.secret_keys.clear();
    assert_eq!(actual, total);
    assert_eq!(
        (actual.settings, actual.simple, actual.advanced),
        (71, 20, 51)
    );
    assert_eq!((actual.secret, actual.restart), (4, 20));
}

#[test]
fn the_catalogue_has_one_setting_per_leaf_of_each_example_document() {
    // The README says every example sets every key but those taken from global: a document
    // that set one would pin it, and global's value would never reach the service.
    for service in SERVICES {
        let schema = schema(service);
        let mut catalogued: Vec<&KeyPath> = schema
            .settings()
            .iter()
            .filter(|s| s.global.is_none())
            .map(|s| &s.key)
            .collect();
        catalogued.sort();
        let doc = config(service);
        let leaves: Vec<KeyPath> = doc.leaves().into_keys().collect();
        let leaves: Vec<&KeyPath> = leaves.iter().collect();
        assert_eq!(catalogued, leaves, "{service}");
    }
}

#[test]
fn secret_keys_are_found_including_nested_ones() {
    let global = schema("global");
    let keys: Vec<String> = global
        .secret_keys()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, ["/mqtt/password", "/mqtt/url"]);
    assert!(global.is_secret(&KeyPath::parse("/mqtt/url").expect("pointer")));
    assert!(!global.is_secret(&KeyPath::parse("/mqtt/host").expect("pointer")));
    assert!(!global.is_secret(&KeyPath::parse("/mqtt").expect("pointer")));
    let tts: Vec<String> = schema("tts-worker")
        .secret_keys()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(tts, ["/eleven_api_key"]);
}

#[test]
fn a_setting_carries_every_annotation_of_its_schema() {
    let global = schema("global");
    let port = global
        .setting(&KeyPath::parse("/mqtt/port").expect("pointer"))
        .expect("port");
    assert_eq!(port.type_, "integer");
    assert!(!port.nullable);
    assert_eq!(port.title.as_deref(), Some("Broker port"));
    assert_eq!(
        port.description.as_deref(),
        Some("TCP port of the MQTT broker.")
    );
    assert!(
        port.help
            .as_deref()
            .is_some_and(|h| h.starts_with("1883 is the customary"))
    );
    assert_eq!(port.complexity, Complexity::Simple);
    assert!(port.restart_required && !port.secret && !port.required);
    assert_eq!(port.env.as_deref(), Some("MQTT_PORT"));
    assert_eq!(port.default, Some(serde_json::json!(1883)));
    assert_eq!(
        port.minimum.as_ref().and_then(serde_json::Number::as_u64),
        Some(1)
    );
    assert_eq!(
        port.maximum.as_ref().and_then(serde_json::Number::as_u64),
        Some(65535)
    );
    assert_eq!(port.name(), "port");

    let password = global
        .setting(&KeyPath::parse("/mqtt/password").expect("pointer"))
        .expect("password");
    assert_eq!(
        (password.type_.as_str(), password.nullable),
        ("string", true)
    );
    assert!(password.secret);
    assert_eq!(password.default, None);

    let level = global
        .setting(&KeyPath::parse("log_level").expect("pointer"))
        .expect("level");
    assert_eq!(level.type_, "string");
    assert_eq!(level.enum_values.as_ref().map(Vec::len), Some(4));
}

#[test]
fn every_fixture_setting_has_the_annotations_the_readme_promises() {
    // "every leaf has title, description, type, default (except secrets), x-complexity, x-env,
    // x-help"
    for service in SERVICES {
        for setting in schema(service).settings() {
            let at = format!("{service}{}", setting.key);
            assert!(setting.title.is_some(), "{at} title");
            assert!(setting.description.is_some(), "{at} description");
            assert!(setting.help.is_some(), "{at} help");
            assert!(setting.env.is_some(), "{at} env");
            assert_ne!(setting.type_, "any", "{at} type");
            assert_eq!(setting.default.is_none(), setting.secret, "{at} default");
        }
    }
}

#[test]
fn settings_come_in_schema_order() {
    let raw = raw_schema("router");
    let declared: Vec<String> = raw["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(|k| format!("/{k}"))
        .collect();
    let listed: Vec<String> = schema("router")
        .settings()
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(listed, declared);
}

#[test]
fn a_setting_serializes_with_its_type_under_the_name_type() {
    let global = schema("global");
    let value = serde_json::to_value(&global.settings()[0]).expect("serializes");
    assert_eq!(value["key"], "/mqtt/host");
    assert_eq!(value["type"], "string");
    assert_eq!(value["complexity"], "simple");
}
