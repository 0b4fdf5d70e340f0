//! Schemas: register and read a service's JSON Schema, validate a document against it, and
//! search every setting of every service.

use axum::Json;
use axum::extract::State;
use dials_domain::{ChangeKind, Document, KeyPath, Version, secret};
use dials_schema::{CompiledSchema, SchemaError, SearchQuery};
use dials_store::{SchemaRecord, StoreError};
use dials_wire::{
    FieldError, MigrationReport, Problem, SchemaResponse, SearchResponse, ValidateRequest,
    ValidateResponse,
};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use utoipa::IntoParams;

use crate::extract::{JsonBody, Query, ServicePath};
use crate::ops::{self, Applied};
use crate::{ApiError, AppState, Principal, Role};

/// A service's schema.
#[utoipa::path(get, path = "/api/v1/services/{service}/schema", tag = "schema",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    responses(
        (status = 200, body = SchemaResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_schema(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
) -> Result<Json<SchemaResponse>, ApiError> {
    principal.require_reader_of(service.as_str())?;
    let record = state
        .store
        .schema(&service)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service {service} has no schema")))?;
    Ok(Json(schema_response(record, None)))
}

/// Query of `PUT …/schema`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutSchemaParams {
    /// When the stored document does not fit the new schema: repair it (drop keys the schema
    /// no longer has, reset values that no longer fit to their default) and write the result
    /// as a new version, instead of answering 409.
    #[serde(default)]
    migrate: bool,
}

/// Registers a service's schema (JSON Schema 2020-12, with the `x-` annotations). Registering
/// the same schema again changes nothing.
#[utoipa::path(put, path = "/api/v1/services/{service}/schema", tag = "schema",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name"), PutSchemaParams),
    request_body(content = Object, description = "The JSON Schema"),
    responses(
        (status = 200, body = SchemaResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json",
            description = "The stored document does not fit the schema; `errors` lists where"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "Not a usable JSON Schema"),
    ))]
pub async fn put_schema(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Query(params): Query<PutSchemaParams>,
    JsonBody(schema): JsonBody<Value>,
) -> Result<Json<SchemaResponse>, ApiError> {
    if !(principal.role == Role::Service && principal.service.as_deref() == Some(service.as_str()))
    {
        principal.require(Role::Admin)?;
    }
    let compiled = Arc::new(CompiledSchema::compile(&schema).map_err(schema_error)?);
    let hash = compiled.hash();
    // A schema change is a write of the service: it waits for the config writes before it and
    // holds the next ones back until the caches show the new schema.
    let _turn = state.write_locks.lock(&service).await;
    if let Some(existing) = state.store.schema(&service).await?
        && existing.hash == hash
    {
        return Ok(Json(schema_response(existing, None)));
    }
    let record = SchemaRecord {
        service: service.clone(),
        schema,
        hash,
        updated_at: ops::now(),
        updated_by: principal.actor().to_owned(),
    };

    let old_keys = crate::secrets::keys_of(
        crate::schemas::schema_of(&state, &service)
            .await?
            .as_deref(),
    );
    let new_keys = compiled.secret_keys();
    let current = state.store.service(&service).await?;
    let mut migration = None;
    let mut report = None;
    if let Some(current) = &current
        && let Some(stored) = &current.document
    {
        // Judged on the effective document: secrets in clear, as the service would run it.
        let effective = crate::secrets::unsealed(&state, &service, stored).await?;
        let conflicts = compiled.conflicts(&effective);
        let mut target = effective.clone();
        let mut why = None;
        if !conflicts.is_empty() {
            if !params.migrate {
                return Err(ApiError::SchemaConflict {
                    detail: format!(
                        "the stored config of {service} does not fit this schema; fix it first, \
                         or register with ?migrate=true to drop or reset the keys listed"
                    ),
                    errors: field_errors(conflicts),
                });
            }
            let repaired =
                compiled
                    .migrate(&effective)
                    .map_err(|violations| ApiError::SchemaConflict {
                        detail: format!(
                            "the stored config of {service} cannot be migrated to this schema"
                        ),
                        errors: field_errors(violations),
                    })?;
            // Store what the user set, minus what the schema refused; defaults stay implicit.
            for key in repaired.dropped.iter().chain(&repaired.reset) {
                target.remove(key);
            }
            compiled
                .check(&target)
                .map_err(|v| ops::invalid(&service, v))?;
            why = Some(format!(
                "schema {} registered with migration",
                &record.hash[..12]
            ));
            report = Some((repaired.dropped, repaired.reset));
        }
        // Keys the new schema marks secret are sealed now, and keys it no longer marks secret
        // are stored in clear: the stored form always follows the schema in force.
        let reason = why.unwrap_or_else(|| {
            format!(
                "schema {} changes which keys are secret",
                &record.hash[..12]
            )
        });
        let change = ops::stage(
            &state,
            &service,
            &ops::Before {
                version: current.version,
                stored,
                effective: &effective,
            },
            Some(&target),
            &new_keys,
            ChangeKind::Migrate,
            &principal,
            Some(reason),
            record.updated_at,
        )?;
        if !change.changes.is_empty() {
            migration = Some(change);
        }
    }

    // A key the schema now marks secret may have been stored in clear before: its value goes
    // from every older version and from history too, in the same transaction.
    let redact_document = |d: &Document| secret::redact_document(d, &new_keys);
    let redact_value = |key: &str, v: &Value| {
        KeyPath::parse(key)
            .ok()
            .and_then(|k| secret::redact_value(&k, v, &new_keys))
    };
    let redaction = dials_store::Redaction {
        document: &redact_document,
        value: &redact_value,
    };
    let newly_secret = new_keys.iter().any(|k| !old_keys.contains(k));
    let committed = match state
        .store
        .put_schema(
            &record,
            migration.clone(),
            newly_secret.then_some(&redaction),
        )
        .await
    {
        Ok(c) => c,
        Err(StoreError::Conflict { current }) => {
            return Err(ApiError::Conflict {
                expected: migration.map_or(Version::NONE, |m| m.base_version),
                current,
            });
        }
        Err(e) => return Err(e.into()),
    };
    state.schemas.set(&service, Some(compiled.clone()));
    let mut migrated = None;
    if let (Some(committed), Some(change)) = (committed, migration) {
        ops::after_commit(
            &state,
            Applied {
                service: service.clone(),
                committed,
                kind: change.kind,
                actor: change.actor,
                reason: change.reason,
                at: change.at,
                document: change.document,
            },
            Some(&compiled),
        )?;
        let (dropped, reset) = report.unwrap_or_default();
        migrated = Some(MigrationReport {
            version: committed.version.0,
            dropped: dropped.iter().map(ToString::to_string).collect(),
            reset: reset.iter().map(ToString::to_string).collect(),
        });
    }
    ops::refresh_cache(&state, &service).await?;
    super::security::audit(&state, &principal, "schema.put", Some(service.to_string())).await;
    Ok(Json(schema_response(record, migrated)))
}

fn schema_response(record: SchemaRecord, migration: Option<MigrationReport>) -> SchemaResponse {
    SchemaResponse {
        service: record.service.to_string(),
        hash: record.hash,
        updated_at: record.updated_at,
        updated_by: record.updated_by,
        schema: record.schema,
        migration,
    }
}

fn schema_error(e: SchemaError) -> ApiError {
    let errors = match &e {
        SchemaError::Invalid { path, message } => {
            vec![FieldError {
                service: None,
                path: path.clone(),
                message: message.clone(),
            }]
        }
        _ => Vec::new(),
    };
    ApiError::Unprocessable {
        detail: format!("not a usable schema: {e}"),
        errors,
    }
}

fn field_errors(violations: Vec<dials_schema::Violation>) -> Vec<FieldError> {
    violations
        .into_iter()
        .map(|v| FieldError {
            service: None,
            path: v.path,
            message: v.message,
        })
        .collect()
}

/// Checks a document against the service's schema without storing anything.
#[utoipa::path(post, path = "/api/v1/services/{service}/validate", tag = "schema",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    request_body = ValidateRequest,
    responses(
        (status = 200, body = ValidateResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn validate(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    JsonBody(body): JsonBody<ValidateRequest>,
) -> Result<Json<ValidateResponse>, ApiError> {
    principal.require_reader_of(service.as_str())?;
    let schema = crate::schemas::schema_of(&state, &service).await?;
    if schema.is_none() && state.store.service(&service).await?.is_none() {
        return Err(ops::not_found(&service));
    }
    let errors = match Document::from_value(body.config) {
        Err(e) => vec![FieldError {
            service: None,
            path: String::new(),
            message: e.to_string(),
        }],
        Ok(document) => match schema.map(|s| s.check(&document)) {
            Some(Err(violations)) => field_errors(violations),
            _ => Vec::new(),
        },
    };
    Ok(Json(ValidateResponse {
        valid: errors.is_empty(),
        errors,
    }))
}

/// Query of `GET /api/v1/search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Text to find in key, title, description or service; empty matches every setting.
    #[serde(default)]
    q: String,
    /// Only this service.
    service: Option<String>,
    /// Only `simple` or `advanced` settings.
    complexity: Option<String>,
    /// Only settings of this JSON type (`string`, `integer`, `number`, `boolean`, …).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    type_: Option<String>,
    /// At most this many items (default 100, at most 1000).
    limit: Option<usize>,
}

/// Settings of every service, ranked: exact key, key prefix, key substring, then title and
/// description matches.
#[utoipa::path(get, path = "/api/v1/search", tag = "schema", security(("bearer" = [])),
    params(SearchParams),
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let complexity = params
        .complexity
        .as_deref()
        .map(|c| {
            c.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "complexity must be `simple` or `advanced`, not {c:?}"
                ))
            })
        })
        .transpose()?;
    let service = params
        .service
        .as_deref()
        .map(crate::extract::service_name)
        .transpose()?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    let query = SearchQuery {
        q: params.q,
        service: service.map(|s| s.to_string()),
        complexity,
        type_: params.type_,
    };
    let index = crate::schemas::search_index(&state).await?;
    let hits = index.search(&query);
    let total = hits.len();
    let items = hits
        .into_iter()
        .take(limit)
        .map(|item| serde_json::to_value(item).unwrap_or_default())
        .collect();
    Ok(Json(SearchResponse { items, total }))
}
