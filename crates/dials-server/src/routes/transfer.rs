//! Export and import: every service's document and schema and every profile as one file, JSON
//! or YAML. Secret values leave only when an admin supplies a passphrase, and then only
//! encrypted with it (Argon2id + AES-256-GCM, `dials_vault::passphrase`). An import checks the
//! whole file first, then writes it in one transaction through [`ops::stage_many`]; importing
//! the same file again changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dials_domain::{ChangeKind, Document, KeyPath, ProfileName, ServiceName, Version, secret};
use dials_schema::CompiledSchema;
use dials_store::{ImportBatch, ProfileMember, ProfileRecord, SchemaRecord};
use dials_vault::passphrase::{self, PassphraseSealed};
use dials_wire::{
    EXPORT_FORMAT, EXPORT_PASSPHRASE_HEADER, ExportFile, ExportService, ImportParams, Plan,
    PlanAction, PlanItem, Problem, Profile, SealedSecrets, SecretValues,
};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::extract::Query;
use crate::ops::{self, Member, Target};
use crate::{ApiError, AppState, Principal, Role};

/// The YAML media type.
const YAML: &str = "application/yaml";

/// Every service with its document and schema, and every profile, as one file: JSON, or YAML
/// when `Accept` asks for it. With `Dials-Export-Passphrase`, secret values are included,
/// encrypted with it; without, secrets are named but not valued.
#[utoipa::path(get, path = "/api/v1/export", tag = "transfer",
    security(("bearer" = [])),
    params(
        ("Dials-Export-Passphrase" = Option<String>, Header,
            description = "Include secret values, encrypted with this passphrase"),
    ),
    responses(
        (status = 200, description = "The export file",
            content((ExportFile = "application/json"), (ExportFile = "application/yaml"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let passphrase = passphrase_of(&headers)?;
    let mut values = SecretValues::default();
    let schemas: HashMap<ServiceName, Value> = state
        .store
        .schemas()
        .await?
        .into_iter()
        .map(|s| (s.service, s.schema))
        .collect();
    let mut services = Vec::new();
    // Instance overrides are no services and are not exported.
    for s in state.store.services().await? {
        if s.name.is_instance_layer() {
            continue;
        }
        let schema = schemas.get(&s.name).cloned();
        let Some(stored) = s.document else {
            if schema.is_some() {
                services.push(ExportService {
                    name: s.name.to_string(),
                    version: 0,
                    config: None,
                    secrets: Vec::new(),
                    schema,
                });
            }
            continue;
        };
        let keys = secret_keys(&state, &s.name).await?;
        let named: Vec<String> = keys
            .iter()
            .filter(|k| stored.get(k).is_some())
            .map(ToString::to_string)
            .collect();
        if passphrase.is_some() && !named.is_empty() {
            let effective = crate::secrets::unsealed(&state, &s.name, &stored).await?;
            values
                .services
                .insert(s.name.to_string(), secret_values(&effective, &keys));
        }
        services.push(ExportService {
            name: s.name.to_string(),
            version: s.version.0,
            config: Some(secret::mask(&stored, &keys).into_value()),
            secrets: named,
            schema,
        });
    }
    // A service with a schema and no row at all (registered, never written).
    for (name, schema) in &schemas {
        if !services.iter().any(|s| s.name == name.as_str()) {
            services.push(ExportService {
                name: name.to_string(),
                version: 0,
                config: None,
                secrets: Vec::new(),
                schema: Some(schema.clone()),
            });
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let mut profiles = Vec::new();
    for record in state.store.profiles().await? {
        if passphrase.is_some() {
            let mut by_service = BTreeMap::new();
            for m in &record.members {
                let keys = secret_keys(&state, &m.service).await?;
                if secret::secret_refs(&m.document).is_empty() {
                    continue;
                }
                let effective = crate::secrets::unsealed(&state, &m.service, &m.document).await?;
                by_service.insert(m.service.to_string(), secret_values(&effective, &keys));
            }
            if !by_service.is_empty() {
                values.profiles.insert(record.name.clone(), by_service);
            }
        }
        profiles.push(super::profiles::profile_view(&state, record).await?);
    }
    let secrets = match passphrase {
        Some(passphrase) => {
            let plaintext = Zeroizing::new(
                serde_json::to_vec(&values).map_err(|e| ApiError::Internal(e.into()))?,
            );
            let sealed = tokio::task::spawn_blocking(move || {
                passphrase::seal(passphrase.as_bytes(), &plaintext)
            })
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
            Some(sealed_secrets(&sealed))
        }
        None => None,
    };
    let file = ExportFile {
        format: EXPORT_FORMAT,
        exported_at: ops::now(),
        services,
        profiles,
        secrets,
    };
    let detail = if file.secrets.is_some() {
        "with secrets"
    } else {
        "without secrets"
    };
    super::security::audit(&state, &principal, "export", Some(detail.into())).await;
    let yaml = wants_yaml(&headers);
    let (body, content_type) = if yaml {
        let text = serde_yaml_ng::to_string(&file).map_err(|e| ApiError::Internal(e.into()))?;
        (text.into_bytes(), YAML)
    } else {
        let text = serde_json::to_vec_pretty(&file).map_err(|e| ApiError::Internal(e.into()))?;
        (text, "application/json")
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Imports an export file (JSON or YAML, by `Content-Type`): schemas, documents and profiles.
/// Everything is checked first; then one transaction writes it, each service that changes as a
/// new version. With `dry_run=true`, only the plan. A file with encrypted secrets needs its
/// passphrase in `Dials-Export-Passphrase`.
#[utoipa::path(post, path = "/api/v1/import", tag = "transfer",
    security(("bearer" = [])),
    params(
        ("dry_run" = Option<bool>, Query, description = "Only compute the plan"),
        ("Dials-Export-Passphrase" = Option<String>, Header,
            description = "The passphrase the file's secrets were encrypted with"),
    ),
    request_body(content((ExportFile = "application/json"), (ExportFile = "application/yaml"))),
    responses(
        (status = 200, body = Plan),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn import(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<ImportParams>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::Json<Plan>, ApiError> {
    principal.require(Role::Admin)?;
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: state.settings.max_body_bytes,
            }
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    let file = parse_file(&headers, &body)?;
    let values = match (&file.secrets, passphrase_of(&headers)?) {
        (None, _) => SecretValues::default(),
        (Some(_), None) => {
            return Err(ApiError::BadRequest(format!(
                "this file carries encrypted secret values; send its passphrase in the \
                 {EXPORT_PASSPHRASE_HEADER} header"
            )));
        }
        (Some(sealed), Some(passphrase)) => open_secrets(sealed, passphrase).await?,
    };

    // Check everything before anything is written: names, schemas, documents.
    let mut schemas_plan = Vec::new();
    let mut new_schemas: Vec<(SchemaRecord, Arc<CompiledSchema>)> = Vec::new();
    let mut members = Vec::new();
    let mut file_schemas: HashMap<ServiceName, Arc<CompiledSchema>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let at = ops::now();
    for s in &file.services {
        let service = ServiceName::parse(&s.name)?;
        if !seen.insert(service.clone()) {
            return Err(ApiError::BadRequest(format!(
                "the file lists service {service} twice"
            )));
        }
        let compiled = match &s.schema {
            Some(schema) => {
                let compiled = Arc::new(CompiledSchema::compile(schema).map_err(|e| {
                    ApiError::BadRequest(format!("the schema of {service} is not valid: {e}"))
                })?);
                let hash = compiled.hash();
                let action = match state.store.schema(&service).await? {
                    Some(existing) if existing.hash == hash => PlanAction::Unchanged,
                    Some(_) => PlanAction::Update,
                    None => PlanAction::Create,
                };
                if action != PlanAction::Unchanged {
                    new_schemas.push((
                        SchemaRecord {
                            service: service.clone(),
                            schema: schema.clone(),
                            hash,
                            updated_at: at,
                            updated_by: principal.actor().to_owned(),
                        },
                        compiled.clone(),
                    ));
                }
                schemas_plan.push(PlanItem {
                    name: service.to_string(),
                    action,
                });
                file_schemas.insert(service.clone(), compiled.clone());
                Some(compiled)
            }
            None => None,
        };
        let Some(config) = &s.config else {
            // A new schema for a service the file has no document for: the document it has
            // must fit that schema too (and is stored in the form the schema asks for).
            if let Some(compiled) = compiled
                && let Some(document) = state
                    .store
                    .service(&service)
                    .await?
                    .and_then(|s| s.document)
            {
                members.push(Member {
                    service,
                    target: Target::Stored(document),
                    schema: Some(compiled),
                });
            }
            continue;
        };
        let mut document = Document::from_value(config.clone()).map_err(|e| {
            ApiError::BadRequest(format!("the config of {service} is not a document: {e}"))
        })?;
        if let Some(given) = values.services.get(service.as_str()) {
            put_values(&mut document, given, &service)?;
        }
        members.push(Member {
            service,
            target: Target::Effective(document),
            schema: compiled,
        });
    }

    let reason = Some("import".to_owned());
    let mut staged = ops::stage_many(
        &state,
        &principal,
        members,
        ChangeKind::Put,
        reason,
        params.dry_run,
    )
    .await?;

    // Profiles: their documents as this database will store them.
    let mut profiles_plan = Vec::new();
    let mut new_profiles = Vec::new();
    for p in &file.profiles {
        let existing = state
            .store
            .profile(ProfileName::parse(&p.name)?.as_str())
            .await?;
        let record = profile_record(
            &state,
            &staged,
            &file_schemas,
            &values,
            p,
            &file.services,
            existing.as_ref(),
        )
        .await?;
        let action = match existing {
            Some(existing)
                if existing.description == record.description
                    && existing.members == record.members =>
            {
                PlanAction::Unchanged
            }
            Some(_) => PlanAction::Update,
            None => PlanAction::Create,
        };
        if action != PlanAction::Unchanged {
            new_profiles.push(record);
        }
        profiles_plan.push(PlanItem {
            name: p.name.clone(),
            action,
        });
    }
    staged.plan.schemas = Some(schemas_plan);
    staged.plan.profiles = Some(profiles_plan);
    if params.dry_run {
        return Ok(axum::Json(staged.plan));
    }
    if !staged.plan.ok {
        return Err(staged.invalid());
    }
    let store = state.store.clone();
    let cache = state.clone();
    let plan = staged
        .commit(&state, |changes| async move {
            let batch = ImportBatch {
                schemas: new_schemas.iter().map(|(r, _)| r.clone()).collect(),
                changes,
                profiles: new_profiles,
            };
            let committed = store.import(batch).await?;
            // Still inside every service's turn: no write sees the old schema after this.
            for (record, compiled) in new_schemas {
                cache.schemas.set(&record.service, Some(compiled));
            }
            Ok(committed)
        })
        .await?;
    if let Some(schemas) = &plan.schemas {
        for item in schemas.iter().filter(|s| s.action != PlanAction::Unchanged) {
            if let Ok(service) = ServiceName::parse(&item.name) {
                ops::refresh_cache(&state, &service).await?;
            }
        }
    }
    super::security::audit(&state, &principal, "import", None).await;
    Ok(axum::Json(plan))
}

/// A profile of the file as this database stores it. Each secret the file shows as
/// `"********"` refers to the sealed value the imported service holds when the file's
/// encrypted values say it is the same value; a file without values leaves the reference a
/// profile of the same name already holds; otherwise it stays `"********"`, which applying the
/// profile reads as "keep the secret in force".
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each part of the import named"
)]
async fn profile_record(
    state: &AppState,
    staged: &ops::Staged<'_>,
    file_schemas: &HashMap<ServiceName, Arc<CompiledSchema>>,
    values: &SecretValues,
    profile: &Profile,
    file_services: &[ExportService],
    existing: Option<&ProfileRecord>,
) -> Result<ProfileRecord, ApiError> {
    let name = ProfileName::parse(&profile.name)?;
    let mut members = Vec::with_capacity(profile.services.len());
    for m in &profile.services {
        let service = ServiceName::parse(&m.service)?;
        let mut document = Document::from_value(m.config.clone()).map_err(|e| {
            ApiError::BadRequest(format!(
                "profile {name}: the config of {service} is not a document: {e}"
            ))
        })?;
        let keys = match file_schemas.get(&service) {
            Some(schema) => schema.secret_keys(),
            None => secret_keys(state, &service).await?,
        };
        let given = values
            .profiles
            .get(name.as_str())
            .and_then(|p| p.get(service.as_str()));
        let imported = file_services
            .iter()
            .find(|s| s.name == service.as_str())
            .and_then(|_| values.services.get(service.as_str()));
        let stored_now = match staged.staged_document(&service) {
            Some(d) => Some(d.clone()),
            None => state
                .store
                .service(&service)
                .await?
                .and_then(|s| s.document),
        };
        for key in &keys {
            if document.get(key).and_then(Value::as_str) != Some(secret::SECRET_MASK) {
                continue;
            }
            let wanted = given.and_then(|g| g.get(key.as_str()));
            let holds = imported.and_then(|i| i.get(key.as_str()));
            let placeholder = stored_now
                .as_ref()
                .and_then(|d| d.get(key))
                .filter(|p| secret::placeholder_version(p).is_some());
            if let (Some(w), Some(h), Some(p)) = (wanted, holds, placeholder)
                && w == h
            {
                document.set(key, p.clone());
            } else if wanted.is_none()
                && let Some(kept) = existing
                    .and_then(|e| e.members.iter().find(|m| m.service == service))
                    .and_then(|m| m.document.get(key))
                    .filter(|p| secret::placeholder_version(p).is_some())
            {
                document.set(key, kept.clone());
            }
        }
        members.push(ProfileMember {
            service,
            version: Version(m.version),
            document,
        });
    }
    members.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(ProfileRecord {
        name: name.to_string(),
        description: profile.description.clone(),
        members,
        created_at: profile.created_at,
        created_by: profile.created_by.clone(),
    })
}

/// Sets the secret values the file carries into a document, each at its key.
fn put_values(
    document: &mut Document,
    given: &BTreeMap<String, Value>,
    service: &ServiceName,
) -> Result<(), ApiError> {
    for (key, value) in given {
        let key = KeyPath::parse(key).map_err(|e| {
            ApiError::BadRequest(format!("a secret of {service} has a bad key: {e}"))
        })?;
        document.set(&key, value.clone());
    }
    Ok(())
}

/// The value of each secret key set in an effective document.
fn secret_values(effective: &Document, keys: &[KeyPath]) -> BTreeMap<String, Value> {
    keys.iter()
        .filter_map(|k| {
            effective
                .get(k)
                .filter(|v| !v.is_null() && v.as_str() != Some(secret::SECRET_MASK))
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

async fn secret_keys(state: &AppState, service: &ServiceName) -> Result<Vec<KeyPath>, ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    Ok(crate::secrets::keys_of(schema.as_deref()))
}

fn passphrase_of(headers: &HeaderMap) -> Result<Option<Zeroizing<String>>, ApiError> {
    let Some(value) = headers.get(EXPORT_PASSPHRASE_HEADER) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::BadRequest(format!(
            "{EXPORT_PASSPHRASE_HEADER} must be visible ASCII text"
        ))
    })?;
    if text.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{EXPORT_PASSPHRASE_HEADER} is empty"
        )));
    }
    Ok(Some(Zeroizing::new(text.to_owned())))
}

fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|part| {
                let essence = part.split(';').next().unwrap_or_default().trim();
                matches!(
                    essence.to_ascii_lowercase().as_str(),
                    "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
                )
            })
        })
}

fn parse_file(headers: &HeaderMap, body: &[u8]) -> Result<ExportFile, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    /// Only the format of a file, read when it does not parse as this build's format.
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    fn decode<T: serde::de::DeserializeOwned>(yaml: bool, body: &[u8]) -> Result<T, String> {
        if yaml {
            serde_yaml_ng::from_slice(body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(body).map_err(|e| e.to_string())
        }
    }
    let yaml = match content_type.as_deref() {
        None | Some("application/json") => false,
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "an import is JSON (application/json) or YAML (application/yaml), not {other:?}"
            )));
        }
    };
    let parsed = decode::<ExportFile>(yaml, body);
    // A file of another format is named as such, whether or not it also parses as this one.
    let format = match &parsed {
        Ok(file) => Some(file.format),
        Err(_) => decode::<Format>(yaml, body).ok().map(|f| f.format),
    };
    if let Some(format) = format.filter(|f| *f != EXPORT_FORMAT) {
        return Err(ApiError::BadRequest(format!(
            "export format {format} is not one this build reads (it reads {EXPORT_FORMAT})"
        )));
    }
    parsed.map_err(|e| ApiError::BadRequest(format!("the file is not a dials export: {e}")))
}

fn sealed_secrets(sealed: &PassphraseSealed) -> SealedSecrets {
    SealedSecrets {
        kdf: "argon2id".into(),
        m_cost: sealed.m_cost,
        t_cost: sealed.t_cost,
        p_cost: sealed.p_cost,
        cipher: "aes-256-gcm".into(),
        salt: STANDARD.encode(sealed.salt),
        nonce: STANDARD.encode(sealed.nonce),
        ciphertext: STANDARD.encode(&sealed.ciphertext),
    }
}

async fn open_secrets(
    sealed: &SealedSecrets,
    passphrase: Zeroizing<String>,
) -> Result<SecretValues, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(format!("the file's encrypted secrets: {what}"));
    if sealed.kdf != "argon2id" || sealed.cipher != "aes-256-gcm" {
        return Err(bad("only argon2id with aes-256-gcm is supported"));
    }
    let salt: [u8; 16] = STANDARD
        .decode(&sealed.salt)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("the salt is not 16 bytes of base64"))?;
    let nonce: [u8; dials_vault::NONCE_LEN] = STANDARD
        .decode(&sealed.nonce)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("the nonce is not 12 bytes of base64"))?;
    let ciphertext = STANDARD
        .decode(&sealed.ciphertext)
        .map_err(|_| bad("the ciphertext is not base64"))?;
    let sealed = PassphraseSealed {
        m_cost: sealed.m_cost,
        t_cost: sealed.t_cost,
        p_cost: sealed.p_cost,
        salt,
        nonce,
        ciphertext,
    };
    let plaintext =
        tokio::task::spawn_blocking(move || passphrase::open(passphrase.as_bytes(), &sealed))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| match e {
                passphrase::PassphraseError::Mismatch => ApiError::BadRequest(
                    "wrong passphrase: it does not open the file's encrypted secrets (or the \
                     file was altered)"
                        .into(),
                ),
                other => bad(&other.to_string()),
            })?;
    serde_json::from_slice(&plaintext).map_err(|e| bad(&e.to_string()))
}
