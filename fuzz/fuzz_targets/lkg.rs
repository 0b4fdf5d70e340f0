//! The last-known-good file: arbitrary bytes never panic when opened; any JSON config sealed
//! opens to the same contents; and a file with one byte changed opens only if what the MAC
//! covers is unchanged.
#![no_main]

use dials_wire::envelope::canonical;
use dials_wire::lkg::{FORMAT, LkgContents};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KEY: &[u8] = b"fuzz-lkg-key";

fuzz_target!(|data: &[u8]| {
    let _ = LkgContents::open(data, KEY, "fuzz");

    let Ok(config) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let contents = LkgContents {
        format: FORMAT,
        service: "fuzz".into(),
        version: data.len() as u64,
        epoch: Some(uuid::Uuid::from_u128(1)),
        schema_hash: "h".into(),
        written_at: "2026-12-05T21:00:00Z".into(),
        config,
        layers: None,
    };
    let Ok(bytes) = contents.seal(KEY) else {
        return;
    };
    let opened = LkgContents::open(&bytes, KEY, "fuzz").expect("a sealed file opens");
    let covered = |c: &LkgContents| {
        canonical(&serde_json::to_value(c).expect("contents are JSON")).expect("canonical")
    };
    assert_eq!(covered(&opened), covered(&contents));
    assert!(LkgContents::open(&bytes, b"another key", "fuzz").is_err());

    // Flip one bit of the file, at a place the input chooses.
    let mut tampered = bytes.clone();
    let at = data.iter().map(|b| *b as usize).sum::<usize>() % tampered.len();
    tampered[at] ^= 0x01;
    if let Ok(accepted) = LkgContents::open(&tampered, KEY, "fuzz") {
        // Only a change that keeps what the MAC covers may pass, such as a digit of an integer
        // beyond 2^53 that rounds to the same double (RFC 8785 numbers are IEEE doubles).
        assert_eq!(covered(&accepted), covered(&contents), "a tampered LKG file opened");
    }
});
