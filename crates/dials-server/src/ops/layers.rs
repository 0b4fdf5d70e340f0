//! Layers: instance override documents and the effective view of one instance.
//!
//! An instance's override is a partial document kept by the store like a service's, under an
//! id no service name can take (`{service}/{instance}`, [`ServiceName::instance_layer`]), so it
//! gets versions, history, diff, restore, sealed secrets and the outbox (published on
//! `config/override/{service}/{instance}`) from the same code. It is validated as what the
//! instance would run with: schema defaults < `global` (the keys the schema takes from it) <
//! the service's document < the override ([`dials_schema::layers`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use dials_domain::{Document, InstanceName, KeyPath, ServiceName, Version, secret};
use dials_schema::{CompiledSchema, Layer, Layers};
use dials_store::ServiceState;
use dials_wire::{EffectiveResponse, InstanceConfigResponse, LayerDocuments, LayerVersions};
use serde_json::Value;
use time::OffsetDateTime;

use super::write::{
    Before, Intent, Preconditions, Subject, document_after, invalid, now, retry_after, stage,
};
use crate::{ApiError, AppState, Principal};

/// The store's id of the override document of `instance` of `service`.
pub fn override_id(service: &ServiceName, instance: &InstanceName) -> ServiceName {
    ServiceName::instance_layer(service, instance)
}

/// The service a stored name belongs to: itself, or the service of an instance override.
pub fn owner_of(name: &ServiceName) -> ServiceName {
    name.instance_layer_parts()
        .and_then(|(service, _)| ServiceName::parse(service).ok())
        .unwrap_or_else(|| name.clone())
}

/// An instance name from a request: 400 when it breaks the rule.
pub fn instance_name(raw: &str) -> Result<InstanceName, ApiError> {
    InstanceName::parse(raw).map_err(|e| ApiError::BadRequest(format!("bad instance name: {e}")))
}

/// What a write does to an override document.
#[derive(Debug, Clone)]
pub enum OverrideIntent {
    /// Replace it.
    Put(Document),
    /// Apply an RFC 7396 merge patch to it.
    Patch(Value),
    /// Write an earlier version of it again.
    RestoreVersion(Version),
    /// Write its state as of an instant again.
    RestoreAt(OffsetDateTime),
    /// Remove it (the instance then runs with the service's document).
    Delete,
}

impl OverrideIntent {
    /// The same write as a service's: an override is computed like any document.
    fn into_intent(self) -> Intent {
        match self {
            OverrideIntent::Put(doc) => Intent::Put(doc),
            OverrideIntent::Patch(patch) => Intent::Patch(patch),
            OverrideIntent::RestoreVersion(v) => Intent::RestoreVersion(v),
            OverrideIntent::RestoreAt(at) => Intent::RestoreAt(at),
            OverrideIntent::Delete => Intent::Delete,
        }
    }
}

/// The service an override belongs to must exist: a document or a schema. Answers its
/// current state and schema.
pub async fn existing_service(
    state: &AppState,
    service: &ServiceName,
) -> Result<(Option<ServiceState>, Option<Arc<CompiledSchema>>), ApiError> {
    if service.is_global() {
        return Err(ApiError::Unprocessable {
            detail: "global holds the settings every service shares; it has no instances to \
                     override"
                .into(),
            errors: Vec::new(),
        });
    }
    let schema = crate::schemas::schema_of(state, service).await?;
    let current = state
        .store
        .service(service)
        .await?
        .filter(|s| s.document.is_some());
    if current.is_none() && schema.is_none() {
        return Err(super::not_found(service));
    }
    Ok((current, schema))
}

/// The 404 of an instance without an override document.
pub fn no_override(service: &ServiceName, instance: &InstanceName) -> ApiError {
    ApiError::NotFound(format!(
        "instance {instance} of service {service} has no override document"
    ))
}

/// Writes one instance's override document: the same pipeline as a service's write (turn,
/// preconditions, compute on the effective document, seal, compare-and-swap, publish), with
/// the merged result checked against the service's schema. Answers the override after the
/// write (`None` after a delete).
pub async fn write_override(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    principal: &Principal,
    intent: OverrideIntent,
    pre: Preconditions,
    reason: Option<String>,
) -> Result<Option<InstanceConfigResponse>, ApiError> {
    let id = override_id(service, instance);
    let _turn = state.write_locks.lock(&id).await;
    let (_, schema) = existing_service(state, service).await?;
    let secret_keys = crate::secrets::keys_of(schema.as_deref());
    let reserved = match &intent {
        OverrideIntent::Put(doc) => secret::reserved_member_in(doc),
        OverrideIntent::Patch(value) => secret::reserved_member(value),
        _ => None,
    };
    if let Some(at) = reserved {
        return Err(crate::secrets::reserved(at));
    }
    let intent = intent.into_intent();
    let subject = Subject::Override(service, instance);
    for _ in 0..8 {
        let current = state.store.service(&id).await?;
        let version = current.as_ref().map_or(Version::NONE, |s| s.version);
        let live_doc = current.as_ref().and_then(|s| s.document.as_ref());
        pre.check(version, live_doc.is_some())?;
        let stored_before = live_doc.cloned().unwrap_or_default();
        let before = crate::secrets::unsealed(state, &id, &stored_before).await?;
        let after = document_after(
            state,
            &id,
            subject,
            &intent,
            live_doc.is_some(),
            &before,
            &secret_keys,
        )
        .await?;
        if let (Some(schema), Some(document)) = (&schema, &after) {
            let merged = merged_with(state, service, schema, document).await?;
            schema
                .check(&merged)
                .map_err(|violations| invalid(service, violations))?;
        }
        let base = Before {
            version,
            stored: &stored_before,
            effective: &before,
        };
        let at = now();
        let kind = intent.kind();
        let change = stage(
            state,
            &id,
            &base,
            after.as_deref(),
            &secret_keys,
            kind,
            principal,
            reason.clone(),
            at,
        )?;
        if let (Some(s), true) = (
            &current,
            change.changes.is_empty() && after.is_some() && live_doc.is_some(),
        ) {
            return Ok(Some(override_response(
                state,
                service,
                instance,
                s,
                &secret_keys,
            )?));
        }
        let (actor, stored_after) = (change.actor.clone(), change.document.clone());
        let started = std::time::Instant::now();
        let result = state.store.commit(change).await;
        crate::metrics::store_commit(started.elapsed());
        let committed = match result {
            Ok(committed) => committed,
            Err(error) => {
                retry_after(state, error, &pre)?;
                continue;
            }
        };
        state.write_failure(None);
        super::announce(state, kind, || dials_store::OutboxItem {
            id: committed.outbox,
            revision: committed.revision,
            service: id.clone(),
            version: committed.version,
            kind,
            document: stored_after.clone(),
            actor: actor.clone(),
            at,
        });
        let Some(document) = stored_after else {
            return Ok(None);
        };
        let written = ServiceState {
            name: id.clone(),
            version: committed.version,
            revision: committed.revision,
            document: Some(document),
            updated_at: at,
            updated_by: actor,
        };
        return Ok(Some(override_response(
            state,
            service,
            instance,
            &written,
            &secret_keys,
        )?));
    }
    Err(ApiError::Busy(format!(
        "the override of instance {instance} of {service} is being written by another process \
         too often to get a turn"
    )))
}

/// What `override_doc` merges to over the service's other layers, secrets opened, before
/// defaults: the document a write of it is validated as.
async fn merged_with(
    state: &AppState,
    service: &ServiceName,
    schema: &CompiledSchema,
    override_doc: &Document,
) -> Result<Document, ApiError> {
    let service_doc = match state.store.service(service).await?.and_then(|s| s.document) {
        Some(stored) => Some(crate::secrets::unsealed(state, service, &stored).await?),
        None => None,
    };
    let global = if schema.global_keys().is_empty() {
        None
    } else {
        let name = ServiceName::parse(ServiceName::GLOBAL)?;
        match state.store.service(&name).await?.and_then(|s| s.document) {
            Some(stored) => Some(crate::secrets::unsealed(state, &name, &stored).await?),
            None => None,
        }
    };
    Ok(schema
        .merge_layers(Layers {
            global: global.as_ref(),
            service: service_doc.as_ref(),
            instance: Some(override_doc),
        })
        .document)
}

/// An override document as everyone but the service's own token reads it: secrets masked.
pub fn override_response(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    s: &ServiceState,
    secret_keys: &[KeyPath],
) -> Result<InstanceConfigResponse, ApiError> {
    let stored = s
        .document
        .as_ref()
        .ok_or_else(|| no_override(service, instance))?;
    let masked = secret::mask(stored, secret_keys);
    Ok(response_with(state, service, instance, s, &masked, stored))
}

fn response_with(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    s: &ServiceState,
    shown: &Document,
    stored: &Document,
) -> InstanceConfigResponse {
    InstanceConfigResponse {
        service: service.to_string(),
        instance: instance.to_string(),
        version: s.version.0,
        revision: s.revision.0,
        epoch: state.epoch.0,
        updated_at: Some(s.updated_at),
        updated_by: Some(s.updated_by.clone()),
        config: shown.to_value(),
        secrets: crate::secrets::versions_of(stored),
    }
}

/// One instance's override as a reader sees it: secrets in clear to the service's own token,
/// masked to everyone else.
pub async fn read_override(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    own: bool,
) -> Result<InstanceConfigResponse, ApiError> {
    let (_, schema) = existing_service(state, service).await?;
    let id = override_id(service, instance);
    let current = state
        .store
        .service(&id)
        .await?
        .filter(|s| s.document.is_some())
        .ok_or_else(|| no_override(service, instance))?;
    if own {
        let stored = current
            .document
            .as_ref()
            .ok_or_else(|| no_override(service, instance))?;
        let opened = crate::secrets::unsealed(state, &id, stored).await?;
        return Ok(response_with(
            state, service, instance, &current, &opened, stored,
        ));
    }
    override_response(
        state,
        service,
        instance,
        &current,
        &crate::secrets::keys_of(schema.as_deref()),
    )
}

/// Deletes the override documents of every instance of `service` (when the service is
/// deleted), each as its own versioned change, so their retained envelopes are cleared too.
pub async fn delete_overrides(
    state: &AppState,
    service: &ServiceName,
    principal: &Principal,
) -> Result<(), ApiError> {
    let ids: Vec<ServiceName> = state
        .store
        .services()
        .await?
        .into_iter()
        .filter(|s| {
            s.document.is_some()
                && s.name
                    .instance_layer_parts()
                    .is_some_and(|(owner, _)| owner == service.as_str())
        })
        .map(|s| s.name)
        .collect();
    for id in ids {
        let _turn = state.write_locks.lock(&id).await;
        let Some(current) = state
            .store
            .service(&id)
            .await?
            .filter(|s| s.document.is_some())
        else {
            continue;
        };
        let stored = current.document.clone().unwrap_or_default();
        let base = Before {
            version: current.version,
            stored: &stored,
            effective: &stored,
        };
        let at = now();
        let change = stage(
            state,
            &id,
            &base,
            None,
            &[],
            dials_domain::ChangeKind::Delete,
            principal,
            Some(format!("service {service} deleted")),
            at,
        )?;
        let actor = change.actor.clone();
        let committed = state.store.commit(change).await?;
        super::announce(state, dials_domain::ChangeKind::Delete, || {
            dials_store::OutboxItem {
                id: committed.outbox,
                revision: committed.revision,
                service: id.clone(),
                version: committed.version,
                kind: dials_domain::ChangeKind::Delete,
                document: None,
                actor,
                at,
            }
        });
    }
    Ok(())
}

/// The effective config of one instance: its layers merged, secrets masked, each key's layer,
/// the versions merged, and the instance's last report (whose environment overrides are
/// shown as the `env` layer of their keys).
pub async fn effective(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    own: bool,
) -> Result<EffectiveResponse, ApiError> {
    let (current, schema) = existing_service(state, service).await?;
    let schema = match schema {
        Some(schema) => schema,
        None => Arc::new(
            CompiledSchema::compile(&serde_json::json!({"type": "object"}))
                .map_err(|e| ApiError::Internal(e.into()))?,
        ),
    };
    let secret_keys = schema.secret_keys();
    let masked = |doc: &Document, keys: &[KeyPath]| secret::mask(doc, keys);
    let service_doc = current
        .as_ref()
        .and_then(|s| s.document.as_ref())
        .map(|d| masked(d, &secret_keys));
    let takes_global = !schema.global_keys().is_empty();
    let (global_doc, global_version) = if takes_global {
        let name = ServiceName::parse(ServiceName::GLOBAL)?;
        let global_schema = crate::schemas::schema_of(state, &name).await?;
        let keys = crate::secrets::keys_of(global_schema.as_deref());
        match state.store.service(&name).await? {
            Some(g) => (
                g.document.as_ref().map(|d| masked(d, &keys)),
                Some(g.version.0),
            ),
            None => (None, Some(0)),
        }
    } else {
        (None, None)
    };
    let id = override_id(service, instance);
    // A removed override keeps its row and version: a client holding an older version learns
    // from the higher one that its copy is gone.
    let over_row = state.store.service(&id).await?;
    let instance_version = over_row.as_ref().map_or(0, |s| s.version.0);
    let over = over_row.filter(|s| s.document.is_some());
    let instance_doc = over
        .as_ref()
        .and_then(|s| s.document.as_ref())
        .map(|d| masked(d, &secret_keys));
    let merged = schema.merge_layers(Layers {
        global: global_doc.as_ref(),
        service: service_doc.as_ref(),
        instance: instance_doc.as_ref(),
    });
    let (config, sources) = merged.with_defaults(&schema);
    let mut layers: BTreeMap<String, String> = sources
        .into_iter()
        .map(|(k, l)| (k.to_string(), l.as_str().to_owned()))
        .collect();
    let reported = reported(state, service, instance, current.as_ref()).await?;
    // The documents as stored; the service's own token reads its secrets in clear.
    let stored_service = current.as_ref().and_then(|s| s.document.clone());
    let stored_instance = over.as_ref().and_then(|s| s.document.clone());
    let shown = |stored: &Option<Document>, doc: &Option<Document>, name: ServiceName| {
        let stored = stored.clone();
        let doc = doc.clone();
        async move {
            match (own, stored) {
                (true, Some(stored)) => {
                    Ok::<_, ApiError>(Some(crate::secrets::unsealed(state, &name, &stored).await?))
                }
                _ => Ok(doc),
            }
        }
    };
    let service_shown = shown(&stored_service, &service_doc, service.clone()).await?;
    let instance_shown = shown(&stored_instance, &instance_doc, id.clone()).await?;
    let documents = LayerDocuments {
        service: service_shown
            .map_or_else(|| Value::Object(Default::default()), Document::into_value),
        service_secrets: stored_service
            .as_ref()
            .map(crate::secrets::versions_of)
            .unwrap_or_default(),
        global: global_doc.clone().map(Document::into_value),
        instance: instance_shown.map(Document::into_value),
        instance_secrets: stored_instance
            .as_ref()
            .map(crate::secrets::versions_of)
            .unwrap_or_default(),
    };
    if let Some(Value::Array(env)) = reported.as_ref().and_then(|r| r.overrides.as_ref()) {
        for key in env.iter().filter_map(Value::as_str) {
            layers.insert(key.to_owned(), Layer::Env.as_str().to_owned());
        }
    }
    Ok(EffectiveResponse {
        service: service.to_string(),
        instance: instance.to_string(),
        epoch: state.epoch.0,
        config: config.into_value(),
        layers,
        versions: LayerVersions {
            service: current.as_ref().map_or(0, |s| s.version.0),
            global: global_version,
            instance: instance_version,
        },
        documents,
        reported,
    })
}

/// The last report of one instance, as the instances list shows it.
async fn reported(
    state: &AppState,
    service: &ServiceName,
    instance: &InstanceName,
    current: Option<&ServiceState>,
) -> Result<Option<dials_wire::InstanceInfo>, ApiError> {
    // Reports are kept in instance-name order; the page starting just before this name holds
    // it if it exists. A name has no predecessor to page from, so read the service's reports
    // (at most 1000) and pick it.
    let reports = state
        .store
        .instances(service, None, dials_mqtt::MAX_INSTANCES_PER_SERVICE)
        .await?;
    let Some(report) = reports
        .into_iter()
        .find(|r| r.instance == instance.as_str())
    else {
        return Ok(None);
    };
    let silent_before = OffsetDateTime::now_utc()
        - time::Duration::try_from(state.settings.instance_timeout).unwrap_or(time::Duration::MAX);
    let status = if report.received_at < silent_before {
        "offline".to_owned()
    } else {
        report.status.clone()
    };
    let version = current.map_or(0, |s| s.version.0);
    Ok(Some(instance_info(report, status, version)))
}

/// What the API shows of one stored report. The store's `overrides` holds either the list of
/// keys the environment overrides, or an object with that list (`env`) beside the report's
/// layers and their versions (see `dials-mqtt`'s publisher).
pub fn instance_info(
    r: dials_store::InstanceReport,
    status: String,
    version: u64,
) -> dials_wire::InstanceInfo {
    let (overrides, layers, global_version, override_version) = match r.overrides {
        Some(serde_json::Value::Object(mut all)) => (
            all.remove("env"),
            all.remove("layers")
                .and_then(|l| serde_json::from_value(l).ok()),
            all.get("global_version")
                .and_then(serde_json::Value::as_u64),
            all.get("override_version")
                .and_then(serde_json::Value::as_u64),
        ),
        other => (other, None, None, None),
    };
    dials_wire::InstanceInfo {
        current: status == "applied" && r.version.0 == version,
        instance: r.instance,
        version: r.version.0,
        status,
        error: r.error,
        schema_hash: r.schema_hash,
        overrides,
        layers,
        global_version,
        override_version,
        reported_at: r.reported_at,
        received_at: r.received_at,
    }
}
