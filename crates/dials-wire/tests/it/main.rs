//! The wire contract as test vectors: `tests/vectors/*.json` are generated from this crate's
//! code, and this test fails when the code and the files drift apart. After a deliberate change
//! of the contract, regenerate them with `DIALS_REGENERATE_VECTORS=1 cargo test --workspace
//! vectors` and review the diff.

mod vectors;
