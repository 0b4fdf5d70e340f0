//! Envelope parsing and verification: arbitrary bytes never panic, and any JSON object signed
//! as a config verifies, survives the round trip, and stops verifying when a byte changes.
#![no_main]

use dials_wire::envelope::{Envelope, EnvelopeSigner, canonical};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let signer = EnvelopeSigner::from_seed(&[7; 32]);
    let trusted = [signer.verifying_key()];
    let _ = Envelope::verify(data, &trusted);

    let Ok(config @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let epoch = uuid::Uuid::from_u128(1);
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let Ok(envelope) = signer.sign("fuzz", 1, 1, config, epoch, at) else {
        return;
    };
    let bytes = envelope.to_bytes();
    let verified = Envelope::verify(&bytes, &trusted).expect("a signed envelope verifies");
    assert_eq!(verified, envelope);

    // Flip one byte of the signed form, at a place the input chooses.
    let mut tampered = bytes.clone();
    let at = data.len() % tampered.len();
    tampered[at] ^= 0x01;
    if let Ok(accepted) = Envelope::verify(&tampered, &trusted) {
        // Only a change that keeps what is signed may pass: whitespace, or a digit of an
        // integer beyond 2^53 that rounds to the same double (every number is an IEEE double
        // in the canonical form, RFC 8785).
        let signed = |e: &Envelope| {
            let mut v = serde_json::to_value(e).expect("an envelope is JSON");
            v.as_object_mut().map(|o| o.remove("signature"));
            canonical(&v).expect("canonical")
        };
        assert_eq!(
            signed(&accepted),
            signed(&envelope),
            "a tampered envelope verified"
        );
    }
});
