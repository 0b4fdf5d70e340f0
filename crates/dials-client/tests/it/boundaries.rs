//! A service that depends on the client gets no part of the manager: no server, no storage, no
//! broker, no web framework, even transitively.

use crate::metadata::{metadata, normal_dependencies};

#[test]
fn the_client_pulls_in_nothing_of_the_manager() {
    let meta = metadata(env!("CARGO_MANIFEST_DIR"));
    let seen = normal_dependencies(&meta, "dials-client");
    let forbidden = [
        "dials-server",
        "dials-store",
        "dials-mqtt",
        "sqlx",
        "axum",
        "rumqttd",
        "utoipa-swagger-ui",
    ];
    let found: Vec<_> = forbidden.iter().filter(|c| seen.contains(**c)).collect();
    assert!(found.is_empty(), "dials-client pulls in {found:?}");
}
