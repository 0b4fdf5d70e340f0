//! The HTTP surface: every route, the fallbacks that keep errors in problem+json, and the
//! OpenAPI document generated from the handlers.

mod backups;
mod config;
mod fleet;
mod history;
mod layers;
mod metrics;
mod profiles;
mod schema;
mod secrets;
mod security;
mod system;
mod transfer;
mod versions;
mod watch;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::openapi::ApiDoc;
use crate::{ApiError, AppState};

/// The whole application as a router over `state`: no socket needed, so tests can drive it
/// directly.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::status))
        .routes(routes!(metrics::metrics))
        .routes(routes!(config::list_services))
        .routes(routes!(
            config::get_config,
            config::put_config,
            config::patch_config
        ))
        .routes(routes!(config::delete_service))
        .routes(routes!(versions::get_version))
        .routes(routes!(versions::diff))
        .routes(routes!(versions::restore))
        .routes(routes!(history::history))
        .routes(routes!(profiles::list_profiles, profiles::save_profile))
        .routes(routes!(profiles::get_profile, profiles::delete_profile))
        .routes(routes!(profiles::apply_profile))
        .routes(routes!(profiles::fleet_restore))
        .routes(routes!(transfer::export))
        .routes(routes!(transfer::import))
        .routes(routes!(schema::get_schema, schema::put_schema))
        .routes(routes!(schema::validate))
        .routes(routes!(schema::search))
        .routes(routes!(security::create_token, security::list_tokens))
        .routes(routes!(security::revoke_token))
        .routes(routes!(security::create_session, security::delete_session))
        .routes(routes!(security::audit_log))
        .routes(routes!(fleet::keys))
        .routes(routes!(fleet::instances))
        .routes(routes!(fleet::forget_instance))
        .routes(routes!(
            layers::get_override,
            layers::put_override,
            layers::patch_override,
            layers::delete_override
        ))
        .routes(routes!(layers::get_override_version))
        .routes(routes!(layers::diff_override))
        .routes(routes!(layers::restore_override))
        .routes(routes!(layers::effective))
        .routes(routes!(watch::watch))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::lkg_key))
        .routes(routes!(backups::create_backup, backups::list_backups))
        .split_for_parts();
    // The secret routes take the key as a wildcard (a JSON Pointer has slashes), which the
    // OpenAPI router cannot express; their documentation is merged in as `{key}`.
    let openapi = crate::openapi::complete(openapi, secrets::SecretsDoc::openapi());
    let api = api.route(
        "/api/v1/services/{service}/secrets/{*key}",
        axum::routing::put(secrets::put_secret)
            .delete(secrets::delete_secret)
            .post(secrets::post_secret)
            .fallback(secrets::other_method),
    );

    let request_id = HeaderName::from_static("x-request-id");
    let limit = state.settings.max_body_bytes;
    api.merge(SwaggerUi::new("/docs").external_url_unchecked("/api/v1/openapi.json", openapi))
        // Matched routes are counted under their template; the rest (the UI's files, unknown
        // paths) under one label.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::readonly::gate,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_route))
        .fallback_service(
            axum::routing::any(crate::ui::fallback)
                .layer(axum::middleware::from_fn(crate::metrics::track_fallback)),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::audit_denials,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::debug_span!("http", method = %req.method(), path = %req.uri().path(), id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
