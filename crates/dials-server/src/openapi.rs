//! The OpenAPI 3.1 document's frame; the paths come from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description served at `/api/v1/openapi.json` and browsable at `/docs`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "dials",
        description = "Live, typed, signed configuration for fleets of small services.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and status"),
        (name = "config", description = "Service config documents"),
        (name = "schema", description = "Schemas, validation and search"),
        (name = "history", description = "Versions, diffs, restores and per-key history"),
        (name = "security", description = "Tokens, browser sessions and the access log"),
        (name = "fleet", description = "Signing keys, instance reports and the change stream"),
        (name = "secrets", description = "Secret values: set, remove, reveal; last-known-good keys"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
