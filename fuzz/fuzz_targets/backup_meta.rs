//! The metadata file beside a backup: arbitrary bytes never panic, and whatever is accepted
//! writes back to bytes that read as the same metadata.
#![no_main]

use dials_wire::backup::BackupMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = BackupMeta::parse(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&meta).expect("metadata is JSON");
    let again = BackupMeta::parse(&bytes).expect("written metadata reads back");
    assert_eq!(again, meta);
});
