//! Profiles (named snapshots of services: save, list, show, delete, apply) and the fleet
//! restore. Both write many services at once through [`ops::stage_many`], in one transaction.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dials_domain::{ChangeKind, Document, ProfileName, ServiceName, secret};
use dials_store::{ProfileMember, ProfileRecord};
use dials_wire::{
    ApplyProfile, FleetRestore, Plan, Problem, Profile, ProfileList, ProfileService,
    ProfileSummary, SaveProfile,
};

use crate::extract::JsonBody;
use crate::ops::{self, Member, Target};
use crate::{ApiError, AppState, Principal, Role};

/// Every profile, by name.
#[utoipa::path(get, path = "/api/v1/profiles", tag = "profiles",
    security(("bearer" = [])),
    responses((status = 200, body = ProfileList)))]
pub async fn list_profiles(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ProfileList>, ApiError> {
    principal.require(Role::Viewer)?;
    let profiles = state
        .store
        .profiles()
        .await?
        .into_iter()
        .map(|p| ProfileSummary {
            services: p.members.iter().map(|m| m.service.to_string()).collect(),
            name: p.name,
            description: p.description,
            created_at: p.created_at,
            created_by: p.created_by,
        })
        .collect();
    Ok(Json(ProfileList { profiles }))
}

/// Saves the current documents of all (or the named) services as a profile. Secrets are kept
/// as references to the sealed values of the versions captured, never as values.
#[utoipa::path(post, path = "/api/v1/profiles", tag = "profiles",
    security(("bearer" = [])),
    request_body = SaveProfile,
    responses(
        (status = 201, body = Profile),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn save_profile(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<SaveProfile>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let name = ProfileName::parse(&body.name)?;
    let mut members = Vec::new();
    match &body.services {
        Some(names) => {
            let mut names = names
                .iter()
                .map(|n| ServiceName::parse(n))
                .collect::<Result<Vec<_>, _>>()?;
            names.sort();
            names.dedup();
            for service in names {
                let current = state.store.service(&service).await?;
                let Some((version, Some(document))) = current.map(|s| (s.version, s.document))
                else {
                    return Err(ops::not_found(&service));
                };
                members.push(ProfileMember {
                    service,
                    version,
                    document,
                });
            }
        }
        None => {
            // Instance overrides are no services: a profile holds services only.
            for s in state.store.services().await? {
                if s.name.is_instance_layer() {
                    continue;
                }
                if let Some(document) = s.document {
                    members.push(ProfileMember {
                        service: s.name,
                        version: s.version,
                        document,
                    });
                }
            }
        }
    }
    let record = ProfileRecord {
        name: name.to_string(),
        description: body.description,
        members,
        created_at: ops::now(),
        created_by: principal.actor().to_owned(),
    };
    if !state.store.save_profile(&record, body.overwrite).await? {
        return Err(ApiError::Exists(format!(
            "a profile named {name} exists; save it with `overwrite` (dials profile save --overwrite) to replace it"
        )));
    }
    super::security::audit(&state, &principal, "profile.save", Some(name.to_string())).await;
    let shown = profile_view(&state, record).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// One profile, secrets shown as `"********"`.
#[utoipa::path(get, path = "/api/v1/profiles/{name}", tag = "profiles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Profile name")),
    responses(
        (status = 200, body = Profile),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    principal.require(Role::Viewer)?;
    let record = find(&state, &name).await?;
    Ok(Json(profile_view(&state, record).await?))
}

/// Deletes a profile.
#[utoipa::path(delete, path = "/api/v1/profiles/{name}", tag = "profiles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Profile name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Operator)?;
    let name = ProfileName::parse(&name)?;
    if !state.store.delete_profile(name.as_str()).await? {
        return Err(no_profile(&name));
    }
    super::security::audit(&state, &principal, "profile.delete", Some(name.to_string())).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads a profile: every member is validated against its service's current schema, then all
/// are written in one transaction, each service that changes as a new version (and one MQTT
/// message); the others are left as they are. With `dry_run`, only the plan.
#[utoipa::path(post, path = "/api/v1/profiles/{name}/apply", tag = "profiles",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Profile name")),
    request_body = ApplyProfile,
    responses(
        (status = 200, body = Plan),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn apply_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ApplyProfile>,
) -> Result<Json<Plan>, ApiError> {
    principal.require(Role::Operator)?;
    let record = find(&state, &name).await?;
    let members = record
        .members
        .into_iter()
        .map(|m| Member {
            service: m.service,
            target: Target::Stored(m.document),
            schema: None,
        })
        .collect();
    let reason = body
        .reason
        .or_else(|| Some(format!("profile {} applied", record.name)));
    write_plan(&state, &principal, members, reason, body.dry_run).await
}

/// Writes the whole fleet (or the services named) as it was at `at`, as new versions, in one
/// transaction. Services that did not exist then are skipped, never deleted; services deleted
/// since are written back.
#[utoipa::path(post, path = "/api/v1/restore", tag = "history",
    security(("bearer" = [])),
    request_body = FleetRestore,
    responses(
        (status = 200, body = Plan),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn fleet_restore(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<FleetRestore>,
) -> Result<Json<Plan>, ApiError> {
    principal.require(Role::Admin)?;
    if body.at > ops::now() {
        return Err(ApiError::BadRequest(format!(
            "`at` ({}) is in the future",
            body.at
        )));
    }
    let services = match &body.services {
        Some(names) => names
            .iter()
            .map(|n| ServiceName::parse(n))
            .collect::<Result<Vec<_>, _>>()?,
        None => state
            .store
            .services()
            .await?
            .into_iter()
            .map(|s| s.name)
            .filter(|name| !name.is_instance_layer())
            .collect(),
    };
    let mut members = Vec::with_capacity(services.len());
    for service in services {
        let then = state.store.version_at(&service, body.at).await?;
        let target = match then.and_then(|v| v.document) {
            Some(document) => Target::Stored(document),
            None => Target::Skip,
        };
        members.push(Member {
            service,
            target,
            schema: None,
        });
    }
    let reason = body
        .reason
        .or_else(|| Some(format!("fleet restored to {}", body.at)));
    write_plan(&state, &principal, members, reason, body.dry_run).await
}

/// Stages the members; answers the plan of a dry run, refuses an invalid write, else commits.
async fn write_plan(
    state: &AppState,
    principal: &Principal,
    members: Vec<Member>,
    reason: Option<String>,
    dry_run: bool,
) -> Result<Json<Plan>, ApiError> {
    let staged = ops::stage_many(
        state,
        principal,
        members,
        ChangeKind::Restore,
        reason,
        dry_run,
    )
    .await?;
    if dry_run {
        return Ok(Json(staged.plan));
    }
    if !staged.plan.ok {
        return Err(staged.invalid());
    }
    let store = state.store.clone();
    let plan = staged
        .commit(
            state,
            |changes| async move { store.commit_many(changes).await },
        )
        .await?;
    Ok(Json(plan))
}

async fn find(state: &AppState, name: &str) -> Result<ProfileRecord, ApiError> {
    let name = ProfileName::parse(name)?;
    state
        .store
        .profile(name.as_str())
        .await?
        .ok_or_else(|| no_profile(&name))
}

fn no_profile(name: &ProfileName) -> ApiError {
    ApiError::NotFound(format!("there is no profile named {name}"))
}

/// A stored profile as people see it: each member's document masked by its service's schema.
pub async fn profile_view(state: &AppState, record: ProfileRecord) -> Result<Profile, ApiError> {
    let mut services = Vec::with_capacity(record.members.len());
    for m in record.members {
        services.push(ProfileService {
            config: masked(state, &m.service, &m.document).await?,
            service: m.service.to_string(),
            version: m.version.0,
        });
    }
    Ok(Profile {
        name: record.name,
        description: record.description,
        created_at: record.created_at,
        created_by: record.created_by,
        services,
    })
}

/// A stored document masked by the schema in force for its service.
pub async fn masked(
    state: &AppState,
    service: &ServiceName,
    document: &Document,
) -> Result<serde_json::Value, ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    let keys = crate::secrets::keys_of(schema.as_deref());
    Ok(secret::mask(document, &keys).into_value())
}
