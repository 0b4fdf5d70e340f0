//! Generates every vector file and compares it with the one in `tests/vectors/`.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dials_wire::envelope::{self, EnvelopeSigner};
use dials_wire::lkg::{self, LkgContents};
use dials_wire::mqtt::{AppliedReport, Receiver, STALE_AFTER, Topics, judge_update};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use uuid::Uuid;

/// The labels whose SHA-256 are the test keys. Test-only: never use these keys for anything.
const MANAGER_LABEL: &str = "dials test vectors: manager signing seed (TEST ONLY)";
const FOREIGN_LABEL: &str = "dials test vectors: foreign signing seed (TEST ONLY)";
const LKG_LABEL: &str = "dials test vectors: lkg key (TEST ONLY)";
const FOREIGN_LKG_LABEL: &str = "dials test vectors: foreign lkg key (TEST ONLY)";

/// The fixed clock of every vector.
const NOW: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);
const EPOCH: Uuid = Uuid::from_u128(0x6a0e_9c52_41d7_4b8e_9f21_3c5d_7e8f_9a0b);
const OTHER_EPOCH: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_8555_6666_7777_8888);
const SERVICE: &str = "tts-worker";
/// The version the receiver holds when each envelope arrives.
const HELD: u64 = 2;

fn seed(label: &str) -> [u8; 32] {
    Sha256::digest(label.as_bytes()).into()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formats")
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Writes `value` to `name` when regenerating, else fails if the file differs.
fn check(name: &str, value: &Value) {
    let mut text = serde_json::to_string_pretty(value).expect("serializes");
    text.push('\n');
    let path = dir().join(name);
    if std::env::var_os("DIALS_REGENERATE_VECTORS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(dir()).expect("vectors folder");
        std::fs::write(&path, text).expect("writes the vector file");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == text,
        "{} differs from what the code produces now; if the contract changed on purpose, \
         regenerate with DIALS_REGENERATE_VECTORS=1 and review the diff",
        path.display()
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

fn manager() -> EnvelopeSigner {
    EnvelopeSigner::from_seed(&seed(MANAGER_LABEL))
}

fn sample_config() -> Value {
    json!({
        "voice": "en_US-amy",
        "rate": 1.5,
        "volume_percent": 80,
        "greeting": "Grüß dich, \"Zoë\" 👋",
        "api_key": {"$secret": 2},
        "rooms": ["kitchen", "hall"]
    })
}

fn sign(
    signer: &EnvelopeSigner,
    service: &str,
    version: u64,
    epoch: Uuid,
    at: OffsetDateTime,
) -> Value {
    let envelope = signer
        .sign(service, version, version + 40, sample_config(), epoch, at)
        .expect("signs");
    serde_json::from_slice(&envelope.to_bytes()).expect("JSON")
}

/// Signs `unsigned` (an envelope without `signature`) as it stands, whatever it holds.
fn sign_raw(seed_label: &str, mut unsigned: Value) -> Value {
    unsigned
        .as_object_mut()
        .expect("object")
        .remove("signature");
    let key = SigningKey::from_bytes(&seed(seed_label));
    let signature = key.sign(&envelope::canonical(&unsigned).expect("canonical"));
    unsigned["signature"] = json!(STANDARD.encode(signature.to_bytes()));
    unsigned
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializes")
}

#[test]
fn envelope_vectors_match_the_code() {
    let signer = manager();
    let trusted = [signer.verifying_key()];
    let receiver = Receiver {
        service: SERVICE,
        epoch: Some(EPOCH),
        version: HELD,
        trusted: &trusted,
    };
    let fresh = NOW - time::Duration::minutes(1);
    let valid = sign(&signer, SERVICE, 3, EPOCH, fresh);
    let tampered = |field: &str, value: Value| {
        let mut v = valid.clone();
        v[field] = value;
        bytes_of(&v)
    };
    let mut changed_config = valid.clone();
    changed_config["config"]["volume_percent"] = json!(200);
    let mut bad_sig = valid.clone();
    let mut raw = STANDARD
        .decode(valid["signature"].as_str().expect("signature"))
        .expect("base64");
    raw[0] ^= 1;
    bad_sig["signature"] = json!(STANDARD.encode(raw));
    let mut wrong_checksum = valid.clone();
    wrong_checksum["checksum"] = json!(hex::encode(Sha256::digest(b"something else")));
    let signed_wrong_checksum = sign_raw(MANAGER_LABEL, wrong_checksum.clone());
    let mut format_two = valid.clone();
    format_two["format"] = json!(2);
    let format_two = sign_raw(MANAGER_LABEL, format_two);
    let foreign = EnvelopeSigner::from_seed(&seed(FOREIGN_LABEL));
    let mut forged = sign(&foreign, SERVICE, 3, EPOCH, fresh);
    forged["key_id"] = json!(signer.key_id());
    let forged = sign_raw(FOREIGN_LABEL, forged);
    // The same envelope with its members in another order and with whitespace: the signature is
    // over the canonical form, so it still verifies.
    let mut reordered = String::from("{\n");
    let object = valid.as_object().expect("object");
    let members: Vec<String> = object
        .iter()
        .rev()
        .map(|(k, v)| format!("  {} : {}", json!(k), v))
        .collect();
    reordered.push_str(&members.join(",\n"));
    reordered.push_str("\n}");

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "valid",
            "A fresh envelope of the next version, signed by the pinned key.",
            bytes_of(&valid),
        ),
        (
            "valid_reordered_with_whitespace",
            "The valid envelope with its members in reverse order and extra whitespace: signature and checksum are over canonical forms, so it verifies.",
            reordered.into_bytes(),
        ),
        (
            "valid_five_minutes_old",
            "Issued exactly 5 minutes before now: not yet stale.",
            bytes_of(&sign(&signer, SERVICE, 3, EPOCH, NOW - STALE_AFTER)),
        ),
        (
            "tampered_config",
            "The config was changed after signing (checksum left alone): the signature covers the config.",
            bytes_of(&changed_config),
        ),
        (
            "tampered_version",
            "The version was raised after signing.",
            tampered("version", json!(4)),
        ),
        (
            "tampered_epoch",
            "The epoch was changed after signing.",
            tampered("epoch", json!(OTHER_EPOCH)),
        ),
        (
            "tampered_service",
            "The service was changed after signing.",
            tampered("service", json!("router")),
        ),
        (
            "tampered_issued_at",
            "issued_at was moved after signing.",
            tampered("issued_at", json!(rfc3339(NOW))),
        ),
        (
            "tampered_checksum",
            "The checksum field was changed after signing.",
            bytes_of(&wrong_checksum),
        ),
        (
            "bad_checksum",
            "Correctly signed, but the checksum does not match the config: refused after the signature checks out.",
            bytes_of(&signed_wrong_checksum),
        ),
        (
            "bad_signature",
            "One bit of the signature flipped.",
            bytes_of(&bad_sig),
        ),
        (
            "signature_not_base64",
            "The signature is not base64.",
            tampered("signature", json!("not base64!")),
        ),
        (
            "wrong_key",
            "Signed by another key, under that key's own key_id: the key is not pinned.",
            bytes_of(&sign(&foreign, SERVICE, 3, EPOCH, fresh)),
        ),
        (
            "forged_key_id",
            "Signed by another key that claims the pinned key's key_id.",
            bytes_of(&forged),
        ),
        (
            "unknown_format",
            "Signed correctly, but format 2.",
            bytes_of(&format_two),
        ),
        (
            "stale",
            "Signed correctly, issued 5 minutes and 1 second before now: not applied from MQTT; re-read over REST.",
            bytes_of(&sign(
                &signer,
                SERVICE,
                3,
                EPOCH,
                NOW - STALE_AFTER - time::Duration::seconds(1),
            )),
        ),
        (
            "other_epoch",
            "Signed correctly for another epoch (the manager's database was replaced): re-read over REST.",
            bytes_of(&sign(&signer, SERVICE, 3, OTHER_EPOCH, fresh)),
        ),
        (
            "same_version",
            "Signed correctly, the version the receiver holds: dropped.",
            bytes_of(&sign(&signer, SERVICE, HELD, EPOCH, fresh)),
        ),
        (
            "old_version",
            "Signed correctly, older than the version held: dropped.",
            bytes_of(&sign(&signer, SERVICE, HELD - 1, EPOCH, fresh)),
        ),
        (
            "other_service",
            "Signed correctly for another service.",
            bytes_of(&sign(&signer, "router", 3, EPOCH, fresh)),
        ),
        (
            "deleted",
            "An empty retained message: the service was deleted; the config in force stays.",
            Vec::new(),
        ),
        ("not_json", "Not JSON at all.", b"not json".to_vec()),
        (
            "no_signature",
            "A JSON object without a signature.",
            b"{\"format\":1}".to_vec(),
        ),
    ];
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(name, description, payload)| {
            let verdict = judge_update(&payload, &receiver, NOW);
            let mut v = json!({
                "name": name,
                "description": description,
                "payload": text(&payload),
                "verdict": verdict.code(),
            });
            if let dials_wire::mqtt::UpdateVerdict::Apply(e) = &verdict {
                v["applies"] = json!({"version": e.version, "config": e.config});
            }
            v
        })
        .collect();
    let file = json!({
        "description": "Signed config envelopes (format 1) as a receiver sees them on config/updated/{service}. For each vector, run the receiver's whole check on `payload` (its UTF-8 bytes) with the pinned keys, the receiver state and the clock below, and reach `verdict`: `apply` (then the config in force becomes `applies.config` at `applies.version`), `ignore:<reason>` (drop it, keep the config in force) or `reread:<reason>` (do not apply it; re-read the config over REST). Checks, in order: empty payload (deleted); JSON object with a string `signature`; format 1; key_id names a pinned key (unknown_key); Ed25519 signature over the JCS form of the envelope without `signature` (bad_signature); checksum = hex SHA-256 of the JCS form of `config` (bad_checksum); service; epoch (unknown_epoch, or no_epoch_yet when the receiver knows none); version newer than held (same_version, old_version); issued_at at most 300 s before now (stale).",
        "keys": {
            "note": "Test-only keys: each seed is SHA-256 of the label's ASCII bytes. Never use them for anything else.",
            "pinned": {
                "label": MANAGER_LABEL,
                "seed_hex": hex::encode(seed(MANAGER_LABEL)),
                "public_key_base64": signer.public_key_base64(),
                "key_id": signer.key_id(),
            },
            "foreign": {
                "label": FOREIGN_LABEL,
                "seed_hex": hex::encode(seed(FOREIGN_LABEL)),
                "public_key_base64": foreign.public_key_base64(),
                "key_id": foreign.key_id(),
            },
        },
        "receiver": {
            "service": SERVICE,
            "epoch": EPOCH,
            "version": HELD,
            "trusted_public_keys_base64": [signer.public_key_base64()],
            "now": rfc3339(NOW),
            "stale_after_seconds": STALE_AFTER.whole_seconds(),
        },
        "vectors": vectors,
    });
    check("envelopes.json", &file);
}

#[test]
fn jcs_vectors_match_the_code() {
    // (name, description, input text, the canonical form RFC 8785 gives where it is known)
    let cases: [(&str, &str, &str, Option<&str>); 11] = [
        (
            "rfc8785_3_2_2",
            "The example of RFC 8785 section 3.2.2: numbers, escapes, literals.",
            r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#,
            Some(
                r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
            ),
        ),
        (
            "rfc8785_3_2_3_sorting",
            "The property-sorting example of RFC 8785 section 3.2.3: keys sort by their UTF-16 code units.",
            r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#,
            Some(
                "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
            ),
        ),
        (
            "escapes",
            "Only \" and \\ and control characters are escaped; \\b \\f \\n \\r \\t use their short forms, other controls \\u00xx in lowercase; / and non-ASCII are written as they are.",
            r#"{"s":"\b\f\n\r\t\"\\\/\u0001\u001f\u007f\u00e9\u2028"}"#,
            Some("{\"s\":\"\\b\\f\\n\\r\\t\\\"\\\\/\\u0001\\u001f\u{7f}é\u{2028}\"}"),
        ),
        (
            "unicode_keys_and_values",
            "Non-ASCII text stays UTF-8; keys sort by UTF-16 code units, so an astral character (a surrogate pair) sorts before U+FB33 but after U+20AC.",
            r#"{"zoë":"Zoë","Ä":1,"a":"😀","€":"euro","דּ":"dalet"}"#,
            None,
        ),
        (
            "minus_zero",
            "-0 is written 0.",
            r#"[-0, -0.0, 0]"#,
            Some("[0,0,0]"),
        ),
        (
            "exponent_limits",
            "Numbers are IEEE doubles written as ECMAScript does: 1e21 and above (and below 1e-6) in exponent form, the rest in plain form.",
            r#"[1e21, 1e20, 123e18, 1e-7, 1e-6, 0.000001234, 1.5e300, 5e-324]"#,
            Some(
                "[1e+21,100000000000000000000,123000000000000000000,1e-7,0.000001,0.000001234,1.5e+300,5e-324]",
            ),
        ),
        (
            "plain_numbers",
            "Integers and fractions in plain form; trailing zeros and a leading + on exponents dropped.",
            r#"[1, -1, 10, 0.5, 4.50, 100.0, 1E2, 2.5e+1, 0.1, 0.30000000000000004]"#,
            Some("[1,-1,10,0.5,4.5,100,100,25,0.1,0.30000000000000004]"),
        ),
        (
            "large_integers",
            "Integers at and beyond 2^53 are doubles too: rounded to the nearest double and written as ECMAScript writes it (see `note`).",
            r#"[9007199254740991, 9007199254740992, 9007199254740993, 18446744073709551615, -9223372036854775808, 123456789012345678901234567890]"#,
            None,
        ),
        (
            "nesting",
            "Objects inside arrays inside objects: members sort at every level, array order stays.",
            r#"{"b":[{"z":1,"a":{"y":[3,2,1],"x":null}},[]],"a":{"d":{},"c":[{"b":true,"a":false}]}}"#,
            Some(
                r#"{"a":{"c":[{"a":false,"b":true}],"d":{}},"b":[{"a":{"x":null,"y":[3,2,1]},"z":1},[]]}"#,
            ),
        ),
        (
            "empty_and_literals",
            "Empty containers and literals.",
            r#" { "t" : true , "f" : false , "n" : null , "o" : { } , "a" : [ ] , "s" : "" } "#,
            Some(r#"{"a":[],"f":false,"n":null,"o":{},"s":"","t":true}"#),
        ),
        (
            "secret_placeholder",
            "A config document as the manager publishes it, a secret replaced by its placeholder.",
            r#"{"voice":"amy","api_key":{"$secret":2},"rate":1.5}"#,
            Some(r#"{"api_key":{"$secret":2},"rate":1.5,"voice":"amy"}"#),
        ),
    ];
    let vectors: Vec<Value> = cases
        .iter()
        .map(|(name, description, input, known)| {
            let value: Value = serde_json::from_str(input).expect("vector input parses");
            let canonical = text(&envelope::canonical(&value).expect("canonical"));
            if let Some(known) = known {
                assert_eq!(
                    &canonical, known,
                    "{name}: the code no longer gives RFC 8785's form"
                );
            }
            json!({
                "name": name,
                "description": description,
                "input": input,
                "canonical": canonical,
                "sha256": envelope::checksum(&value).expect("checksum"),
            })
        })
        .collect();
    let file = json!({
        "description": "The JSON Canonicalization Scheme (RFC 8785) as dials computes it: the bytes every checksum, signature and LKG MAC is taken over. For each vector, parse `input` (JSON text), canonicalize it, and produce exactly the UTF-8 bytes of `canonical`, whose lowercase hex SHA-256 is `sha256` (the envelope's checksum of a config that is this document).",
        "note": "Every number is an IEEE double, as RFC 8785 says, even where the parsed document holds an exact integer: integers beyond 2^53 are rounded in the canonical form (see `large_integers`: 9007199254740993 is written 9007199254740992), so two documents that differ only there have the same checksum. Keep config integers within ±2^53.",
        "vectors": vectors,
    });
    check("jcs.json", &file);
}

#[test]
fn applied_report_vectors_match_the_code() {
    let topics = Topics::new("home/");
    let full = json!({
        "service": SERVICE, "instance": "pi-kitchen", "version": 3, "status": "rejected",
        "error": "/rate: must be at most 2", "at": "2026-11-22T10:00:00Z",
        "schema_hash": "5f1e0c", "overrides": ["/voice"]
    })
    .to_string();
    let cases: Vec<(&str, &str, String, String)> = vec![
        (
            "full",
            "Every field, as the Rust client sends it.",
            topics.applied(SERVICE, "pi-kitchen"),
            full,
        ),
        (
            "minimal",
            "Only version and status: at, error, schema_hash and overrides are optional (a receiver stamps its own clock for a missing at).",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":1,"status":"applied"}"#.into(),
        ),
        (
            "failed",
            "A change callback refused the version.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":4,"status":"failed","error":"a change callback refused it: no"}"#.into(),
        ),
        (
            "topic_wins_over_body",
            "The body names another service and instance: the topic's names are the report's.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"service":"router","instance":"elsewhere","version":2,"status":"applied"}"#.into(),
        ),
        (
            "host_name_instance",
            "An instance named after a host: capitals, dots, underscores and non-ASCII are allowed.",
            topics.applied(SERVICE, "Küche.Pi_2"),
            r#"{"version":2,"status":"applied"}"#.into(),
        ),
        (
            "long_error_cut",
            "An error longer than 2000 characters is cut to its first 2000.",
            topics.applied(SERVICE, "pi-kitchen"),
            json!({"version": 2, "status": "failed", "error": "é".repeat(2100)}).to_string(),
        ),
        (
            "unknown_fields_ignored",
            "Fields the contract does not name are ignored.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":2,"status":"applied","uptime":12}"#.into(),
        ),
        (
            "offline_last_will",
            "The last will an instance leaves with the broker: status offline, version 0 (the receiver keeps the version last reported).",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":0,"status":"offline"}"#.into(),
        ),
        (
            "unknown_status",
            "status must be applied, rejected, failed or offline.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":2,"status":"great"}"#.into(),
        ),
        (
            "bad_service",
            "The topic's service level is not a service name (^[a-z][a-z0-9-]{0,62}$).",
            topics.applied("Bad_Name", "pi-kitchen"),
            r#"{"version":2,"status":"applied"}"#.into(),
        ),
        (
            "instance_too_long",
            "An instance name of 129 bytes (at most 128).",
            topics.applied(SERVICE, &"x".repeat(129)),
            r#"{"version":2,"status":"applied"}"#.into(),
        ),
        (
            "instance_control_character",
            "An instance name with a control character.",
            topics.applied(SERVICE, "pi\u{1}"),
            r#"{"version":2,"status":"applied"}"#.into(),
        ),
        (
            "not_json",
            "Not JSON.",
            topics.applied(SERVICE, "pi-kitchen"),
            "applied".into(),
        ),
        (
            "no_version",
            "version is required.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"status":"applied"}"#.into(),
        ),
        (
            "negative_version",
            "version is an unsigned integer.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":-1,"status":"applied"}"#.into(),
        ),
        (
            "bad_at",
            "at, when given, is RFC 3339.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":2,"status":"applied","at":"yesterday"}"#.into(),
        ),
        (
            "overrides_not_a_list",
            "overrides, when given, is a list of keys.",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":2,"status":"applied","overrides":{"/voice":true}}"#.into(),
        ),
        (
            "overrides_not_strings",
            "overrides holds strings (JSON Pointers).",
            topics.applied(SERVICE, "pi-kitchen"),
            r#"{"version":2,"status":"applied","overrides":[1]}"#.into(),
        ),
        (
            "schema_hash_too_long",
            "schema_hash is at most 128 characters.",
            topics.applied(SERVICE, "pi-kitchen"),
            json!({"version": 2, "status": "applied", "schema_hash": "a".repeat(129)}).to_string(),
        ),
        (
            "too_large",
            "A payload over 8192 bytes is refused unread.",
            topics.applied(SERVICE, "pi-kitchen"),
            format!(
                r#"{{"version":2,"status":"applied","pad":"{}"}}"#,
                "x".repeat(8200)
            ),
        ),
    ];
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(name, description, topic, payload)| {
            let (service, instance) = topics.parse_applied(&topic).expect("an applied topic");
            let expect = match AppliedReport::parse(service, instance, payload.as_bytes()) {
                Ok(report) => json!({"valid": true, "report": report}),
                Err(e) => json!({"valid": false, "reason": e.code()}),
            };
            json!({
                "name": name,
                "description": description,
                "topic": topic,
                "payload": payload,
                "expect": expect,
            })
        })
        .collect();
    let file = json!({
        "description": "Applied reports as the manager receives them on {prefix}config/applied/{service}/{instance}, here with the prefix `home/`. For each vector, read `payload` as received on `topic` and conclude `expect`: either valid, with the report as the receiver records it (`report`, serialized as a sender would send it), or refused with `reason`: too_large, bad_service, bad_instance, not_a_report, unknown_status, schema_hash_too_long or bad_overrides. A sender must produce reports that read back valid.",
        "prefix": topics.prefix(),
        "max_payload_bytes": dials_wire::mqtt::MAX_REPORT_BYTES,
        "vectors": vectors,
    });
    check("applied_reports.json", &file);
}

#[test]
fn topic_vectors_match_the_code() {
    let vectors: Vec<Value> = ["", "home/", "site-a/dials/"]
        .iter()
        .map(|prefix| {
            let t = Topics::new(*prefix);
            json!({
                "prefix": prefix,
                "updated": t.updated(SERVICE),
                "updated_filter": t.updated_filter(),
                "applied": t.applied(SERVICE, "pi-kitchen"),
                "applied_filter": t.applied_filter(),
                "health": t.health(),
                "audit": t.audit("put"),
            })
        })
        .collect();
    let t = Topics::new("home/");
    let parses: Vec<Value> = [
        "home/config/updated/tts-worker",
        "config/updated/tts-worker",
        "home/config/updated/",
        "home/config/updated/a/b",
        "home/config/applied/tts-worker/pi-kitchen",
        "home/config/applied/tts-worker/",
        "home/config/applied//pi",
        "home/config/applied/tts-worker/pi/extra",
    ]
    .iter()
    .map(|topic| {
        json!({
            "topic": topic,
            "updated_service": t.parse_updated(topic),
            "applied": t.parse_applied(topic).map(|(s, i)| json!({"service": s, "instance": i})),
        })
    })
    .collect();
    let file = json!({
        "description": "Topic names. The prefix is prepended exactly as configured (no separator is added). `build`: for each prefix, the topics for service tts-worker, instance pi-kitchen and audit action put. `parse`: with prefix `home/`, which service an updated topic names and which service and instance an applied topic names (null: not such a topic); levels must be non-empty and the last level holds no `/`.",
        "build": vectors,
        "parse": parses,
    });
    check("topics.json", &file);
}

#[test]
fn lkg_vectors_match_the_code() {
    let key = seed(LKG_LABEL).to_vec();
    let foreign_key = seed(FOREIGN_LKG_LABEL).to_vec();
    let contents = LkgContents {
        format: lkg::FORMAT,
        service: SERVICE.into(),
        version: 7,
        epoch: Some(EPOCH),
        schema_hash: "5f1e0c".into(),
        written_at: rfc3339(NOW),
        config: json!({"voice": "amy", "volume": 80}),
        layers: None,
    };
    let sealed = contents.seal(&key).expect("seals");
    let valid: Value = serde_json::from_slice(&sealed).expect("JSON");
    let edit = |field: &str, value: Value| {
        let mut v = valid.clone();
        v[field] = value;
        bytes_of(&v)
    };
    let format_two = LkgContents {
        format: 2,
        ..contents.clone()
    }
    .seal(&key)
    .expect("seals");
    let no_epoch = LkgContents {
        epoch: None,
        ..contents.clone()
    }
    .seal(&key)
    .expect("seals");
    let other_service = LkgContents {
        service: "router".into(),
        ..contents.clone()
    }
    .seal(&key)
    .expect("seals");
    let mut reordered = String::from("{ ");
    let members: Vec<String> = valid
        .as_object()
        .expect("object")
        .iter()
        .rev()
        .map(|(k, v)| format!("{}: {}", json!(k), v))
        .collect();
    reordered.push_str(&members.join(", "));
    reordered.push_str(" }");
    let mut without_mac = valid.clone();
    without_mac.as_object_mut().expect("object").remove("mac");
    let mut extra = valid.clone();
    extra["note"] = json!("hello");

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("valid", "A file as the client writes it.", sealed.clone()),
        (
            "valid_without_epoch",
            "epoch may be null (the client started from defaults and never heard the manager's epoch).",
            no_epoch,
        ),
        (
            "valid_reordered_with_whitespace",
            "The valid file with its members in reverse order and whitespace: the MAC is over the canonical form.",
            reordered.into_bytes(),
        ),
        ("tampered_config", "A config value was changed.", {
            let mut v = valid.clone();
            v["config"]["volume"] = json!(200);
            bytes_of(&v)
        }),
        (
            "tampered_version",
            "The version was changed.",
            edit("version", json!(8)),
        ),
        (
            "tampered_epoch",
            "The epoch was changed.",
            edit("epoch", json!(OTHER_EPOCH)),
        ),
        (
            "foreign_key",
            "A well-formed file signed with another key (another token, another lkg_key).",
            contents.seal(&foreign_key).expect("seals"),
        ),
        (
            "other_service",
            "Signed with the right key, but written for another service.",
            other_service,
        ),
        (
            "unknown_format",
            "Signed with the right key, but format 2.",
            format_two,
        ),
        (
            "mac_not_hex",
            "The mac is not hex.",
            edit("mac", json!("zz")),
        ),
        ("no_mac", "The mac is missing.", bytes_of(&without_mac)),
        (
            "unknown_field",
            "An extra member: the format allows none.",
            bytes_of(&extra),
        ),
        ("garbage", "Not JSON.", b"garbage".to_vec()),
    ];
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(name, description, bytes)| {
            let expect = match LkgContents::open(&bytes, &key, SERVICE) {
                Ok(c) => json!({"valid": true, "version": c.version, "epoch": c.epoch, "config": c.config}),
                Err(e) => json!({"valid": false, "reason": e.code()}),
            };
            json!({
                "name": name,
                "description": description,
                "file": text(&bytes),
                "expect": expect,
            })
        })
        .collect();
    let token = "dials-test-token";
    let file = json!({
        "description": "Last-known-good files (format 1). For each vector, read `file` (its UTF-8 bytes) as service `service` with the HMAC key `key_hex`, and conclude `expect`: valid (start from `config` at `version` and `epoch`) or refused with `reason`: malformed (not JSON, not the shape, or an unknown member), unknown_format, mac_not_hex, bad_mac (altered, or written with another key) or wrong_service. The MAC is lowercase hex HMAC-SHA256 over the JCS form of the file's object without `mac`; a refused file is never used.",
        "service": SERVICE,
        "key": {
            "note": "Test-only keys: SHA-256 of the label's ASCII bytes. Never use them for anything else.",
            "label": LKG_LABEL,
            "key_hex": hex::encode(&key),
            "foreign_label": FOREIGN_LKG_LABEL,
            "foreign_key_hex": hex::encode(&foreign_key),
        },
        "key_from_token": {
            "description": "Without an explicit key, the key is HMAC-SHA256 keyed by the service's token over the ASCII bytes dials-lkg-v1.",
            "token": token,
            "key_hex": hex::encode(lkg::key_from_token(token)),
        },
        "vectors": vectors,
    });
    check("lkg.json", &file);
}

#[test]
fn instance_override_vectors_match_the_code() {
    const INSTANCE: &str = "pi-kitchen";
    let signer = manager();
    let trusted = [signer.verifying_key()];
    let id = format!("{SERVICE}/{INSTANCE}");
    let receiver = Receiver {
        service: &id,
        epoch: Some(EPOCH),
        version: HELD,
        trusted: &trusted,
    };
    let fresh = NOW - time::Duration::minutes(1);
    let valid = sign(&signer, &id, 3, EPOCH, fresh);
    let mut moved = valid.clone();
    moved["service"] = json!(format!("{SERVICE}/pi-hall"));
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "valid",
            "A fresh override envelope of the next version for this very instance.",
            bytes_of(&valid),
        ),
        (
            "other_instance",
            "Signed correctly for another instance of the same service.",
            bytes_of(&sign(
                &signer,
                &format!("{SERVICE}/pi-hall"),
                3,
                EPOCH,
                fresh,
            )),
        ),
        (
            "service_envelope",
            "The service's own envelope replayed on the override topic: it names the service, not the instance.",
            bytes_of(&sign(&signer, SERVICE, 3, EPOCH, fresh)),
        ),
        (
            "moved_to_another_instance",
            "The valid envelope with `service` changed to another instance after signing.",
            bytes_of(&moved),
        ),
        (
            "removed",
            "An empty retained message: the override was removed; drop the layer.",
            Vec::new(),
        ),
    ];
    let as_service = Receiver {
        service: SERVICE,
        ..receiver
    };
    let vectors: Vec<Value> = cases
        .into_iter()
        .map(|(name, description, payload)| {
            let verdict = judge_update(&payload, &receiver, NOW);
            let mut v = json!({
                "name": name,
                "description": description,
                "payload": text(&payload),
                "verdict": verdict.code(),
                "verdict_as_service_envelope": judge_update(&payload, &as_service, NOW).code(),
            });
            if let dials_wire::mqtt::UpdateVerdict::Apply(e) = &verdict {
                v["applies"] = json!({"version": e.version, "config": e.config});
            }
            v
        })
        .collect();
    let topics: Vec<Value> = ["", "home/"]
        .iter()
        .map(|prefix| {
            let t = Topics::new(*prefix);
            json!({
                "prefix": prefix,
                "instance_override": t.instance_override(SERVICE, INSTANCE),
                "envelope_of_id": t.envelope(&id),
                "envelope_of_service": t.envelope(SERVICE),
            })
        })
        .collect();
    let file = json!({
        "description": "Instance override envelopes (format 1, unchanged) as instance pi-kitchen of tts-worker sees them on config/override/tts-worker/pi-kitchen. The envelope's `service` is `{service}/{instance}`, so the signature binds the instance; a receiver runs the same check as for its service's envelopes (see envelopes.json, same keys and clock) with `service` = `tts-worker/pi-kitchen` and the override version it holds, and reaches `verdict`. An empty payload removes the layer (the instance merges without it). `verdict_as_service_envelope` is what the same payload gets from a receiver of the service's own envelopes (service `tts-worker`): an override envelope never passes for a service's. `topics`: the override topic under each prefix, and the topic a stored document's id is published on.",
        "receiver": {
            "service": id,
            "epoch": EPOCH,
            "version": HELD,
            "trusted_public_keys_base64": [signer.public_key_base64()],
            "now": rfc3339(NOW),
        },
        "vectors": vectors,
        "topics": topics,
    });
    check("overrides.json", &file);
}
