//! Search across the fixture fleet: ranking, filters and the shape of results.

use dials_schema::search::{SECRET_MASK, search};
use dials_schema::{Complexity, SearchIndex, SearchItem, SearchQuery};
use serde_json::json;

use crate::support::{SERVICES, config, schema};

/// One item per setting of every fixture service, valued from its example config.
fn fleet() -> Vec<SearchItem> {
    let mut items = Vec::new();
    for service in SERVICES {
        let schema = schema(service);
        let doc = schema.apply_defaults(&config(service));
        for setting in schema.settings() {
            items.push(SearchItem::from_setting(
                service,
                setting,
                doc.get(&setting.key),
            ));
        }
    }
    items
}

fn names(found: &[&SearchItem]) -> Vec<String> {
    found
        .iter()
        .map(|i| format!("{}{}", i.service, i.key))
        .collect()
}

fn query(q: &str) -> SearchQuery {
    SearchQuery::text(q)
}

#[test]
fn an_empty_query_lists_every_setting_by_service_then_key() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&query(""));
    assert_eq!(found.len(), 71);
    let order: Vec<(String, String)> = found
        .iter()
        .map(|i| (i.service.clone(), i.key.to_string()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn an_exact_key_ranks_before_a_key_containing_it() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&query("vad_threshold"));
    assert_eq!(
        names(&found),
        [
            "stt-worker/vad_threshold",
            "wake-activation/wake_vad_threshold"
        ]
    );
}

#[test]
fn key_prefixes_rank_before_key_substrings_and_those_before_description_matches() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&query("wake"));
    assert_eq!(
        names(&found),
        [
            // the key starts with "wake", by service then key
            "wake-activation/wake_detection_threshold",
            "wake-activation/wake_energy_boost_factor",
            "wake-activation/wake_min_retrigger_sec",
            "wake-activation/wake_model_path",
            "wake-activation/wake_speex_noise_suppression",
            "wake-activation/wake_vad_threshold",
            // the key contains "wake"
            "router/router_wake_ack_choices",
            "router/router_wake_ack_enabled",
            "router/router_wake_ack_text",
            "router/router_wake_window_sec",
            "tts-worker/tts_wake_cache_dir",
            "tts-worker/tts_wake_cache_enable",
            "tts-worker/tts_wake_cache_max",
            // only the description mentions the wake word
            "router/router_live_mode_default",
        ]
    );
}

#[test]
fn title_matches_rank_after_key_matches() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&query("Voice"));
    assert_eq!(
        names(&found),
        [
            "tts-worker/eleven_voice_id",
            "tts-worker/piper_voice",
            "stt-worker/vad_threshold",
            "wake-activation/wake_vad_threshold",
        ]
    );
    assert_eq!(found[2].title.as_deref(), Some("Voice detection threshold"));
}

#[test]
fn every_rank_comes_in_order_exact_prefix_substring_title_description_service() {
    let item = |service: &str, key: &str, title: &str, description: &str| SearchItem {
        service: service.to_owned(),
        key: key.parse().expect("pointer"),
        title: Some(title.to_owned()),
        description: Some(description.to_owned()),
        type_: "string".to_owned(),
        complexity: Complexity::Advanced,
        secret: false,
        restart_required: false,
        value: None,
        is_default: true,
    };
    let items = vec![
        item("a", "/x", "", "about the port"),
        item("port-forwarder", "/y", "", ""),
        item("a", "/z", "Port", ""),
        item("a", "/mqtt_port", "", ""),
        item("b", "/port_range", "", ""),
        item("a", "/mqtt/port", "", ""),
        item("a", "/unrelated", "", ""),
    ];
    let expected = [
        "a/mqtt/port",
        "b/port_range",
        "a/mqtt_port",
        "a/z",
        "a/x",
        "port-forwarder/y",
    ];
    assert_eq!(
        names(&SearchIndex::new(items.clone()).search(&query("PORT"))),
        expected
    );
    assert_eq!(
        names(&search(&items, &query("port"))),
        expected,
        "the one-shot search agrees"
    );
}

#[test]
fn the_service_filter_keeps_one_service_and_matches_its_name() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&SearchQuery {
        service: Some("Global".to_owned()),
        ..query("")
    });
    assert_eq!(found.len(), 11);
    assert!(found.iter().all(|i| i.service == "global"));
    // The service name itself is searchable text.
    let by_name = index.search(&query("memory-worker"));
    assert_eq!(by_name.len(), 7);
}

#[test]
fn the_complexity_filter_keeps_simple_or_advanced_settings() {
    let index = SearchIndex::new(fleet());
    let simple = index.search(&SearchQuery {
        complexity: Some(Complexity::Simple),
        ..query("")
    });
    assert_eq!(simple.len(), 20);
    assert!(simple.iter().all(|i| i.complexity == Complexity::Simple));
    let advanced = index.search(&SearchQuery {
        complexity: Some(Complexity::Advanced),
        ..query("")
    });
    assert_eq!(advanced.len(), 51);
}

#[test]
fn the_type_filter_keeps_one_json_type() {
    let index = SearchIndex::new(fleet());
    let booleans = index.search(&SearchQuery {
        type_: Some("boolean".to_owned()),
        ..query("")
    });
    let expected = SERVICES
        .iter()
        .flat_map(|s| schema(s).settings().to_vec())
        .filter(|s| s.type_ == "boolean")
        .count();
    assert!(expected > 0);
    assert_eq!(booleans.len(), expected);
    assert!(booleans.iter().all(|i| i.type_ == "boolean"));
}

#[test]
fn filters_combine_with_the_query() {
    let index = SearchIndex::new(fleet());
    let found = index.search(&SearchQuery {
        q: "threshold".to_owned(),
        service: Some("wake-activation".to_owned()),
        complexity: Some(Complexity::Advanced),
        type_: Some("number".to_owned()),
    });
    assert_eq!(names(&found), ["wake-activation/wake_vad_threshold"]);
}

#[test]
fn a_query_that_matches_nothing_finds_nothing() {
    assert!(
        SearchIndex::new(fleet())
            .search(&query("no such setting anywhere"))
            .is_empty()
    );
}

#[test]
fn results_show_values_with_secrets_masked_and_mark_defaults() {
    let index = SearchIndex::new(fleet());
    let key = index.search(&query("eleven_api_key"))[0];
    assert!(key.secret);
    assert_eq!(key.value, Some(json!(SECRET_MASK)));
    let volume = index.search(&query("volume_percent"))[0];
    assert_eq!(volume.value, Some(json!(80)));
    assert!(
        !volume.is_default,
        "the example sets every value away from its default"
    );
}
