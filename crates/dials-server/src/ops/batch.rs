//! Writes of many services at once — a profile apply, a fleet restore, an import. Each
//! member's new document is computed, validated against the schema it will live under and
//! staged by the same steps as a single write ([`super::stage`]); then all of them commit in one
//! transaction, and each service that changed is announced as a single write announces it
//! ([`super::after_commit`]). Services whose document would not change get no version and no
//! MQTT message.

use std::sync::Arc;

use dials_domain::{ChangeKind, Document, ServiceName, Version, secret};
use dials_schema::CompiledSchema;
use dials_store::{Committed, NewChange, StoreError};
use dials_wire::{FieldError, Plan, PlanAction, PlanChange, PlanService};
use tokio::sync::MutexGuard;

use super::write::{Applied, Before, after_commit, now, restored, stage};
use crate::{ApiError, AppState, Principal};

/// Where a member's new document comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// A document as this database stored it (a profile member, an earlier version): its
    /// placeholders name sealed values that are opened and written again, and a secret it
    /// holds as `"********"` keeps the value in force.
    Stored(Document),
    /// A document with secret values in clear (an import); a secret given as `"********"` or
    /// left out keeps the value in force.
    Effective(Document),
    /// Leave the service alone (it did not exist at the instant restored).
    Skip,
}

/// One service of a many-service write.
#[derive(Debug, Clone)]
pub struct Member {
    /// The service.
    pub service: ServiceName,
    /// Its new document.
    pub target: Target,
    /// The schema it will live under when the same write brings a new one (an import);
    /// `None`: the schema in force now.
    pub schema: Option<Arc<CompiledSchema>>,
}

/// Members computed and staged, their services' turns held until the commit is announced.
#[derive(Debug)]
pub struct Staged<'a> {
    _turns: Vec<MutexGuard<'a, ()>>,
    /// The plan: one entry per member, by service name.
    pub plan: Plan,
    /// The changes to commit, each with the index of its plan entry and its schema.
    changes: Vec<(usize, NewChange, Option<Arc<CompiledSchema>>)>,
}

/// Computes, validates and stages every member, holding each service's turn. Nothing is
/// written; see [`Staged::commit`].
pub async fn stage_many<'a>(
    state: &'a AppState,
    principal: &Principal,
    mut members: Vec<Member>,
    kind: ChangeKind,
    reason: Option<String>,
    dry_run: bool,
) -> Result<Staged<'a>, ApiError> {
    members.sort_by(|a, b| a.service.cmp(&b.service));
    members.dedup_by(|a, b| a.service == b.service);
    let services: Vec<ServiceName> = members.iter().map(|m| m.service.clone()).collect();
    let turns = state.write_locks.lock_all(&services).await;
    let at = now();
    let mut plan = Plan {
        dry_run,
        ok: true,
        services: Vec::with_capacity(members.len()),
        profiles: None,
        schemas: None,
    };
    let mut changes = Vec::new();
    for member in members {
        let service = &member.service;
        let schema = match member.schema {
            Some(schema) => Some(schema),
            None => crate::schemas::schema_of(state, service).await?,
        };
        let secret_keys = crate::secrets::keys_of(schema.as_deref());
        let current = state.store.service(service).await?;
        let version = current.as_ref().map_or(Version::NONE, |s| s.version);
        let live_doc = current.as_ref().and_then(|s| s.document.as_ref());
        let from_version = if live_doc.is_some() { version.0 } else { 0 };
        let mut entry = PlanService {
            service: service.to_string(),
            action: PlanAction::Unchanged,
            from_version,
            version: from_version,
            changes: Vec::new(),
            errors: Vec::new(),
        };
        let stored_before = live_doc.cloned().unwrap_or_default();
        let before = crate::secrets::unsealed(state, service, &stored_before).await?;
        let after = match member.target {
            Target::Skip => {
                entry.action = PlanAction::Skipped;
                plan.services.push(entry);
                continue;
            }
            Target::Stored(doc) => restored(state, service, &doc, &before, &secret_keys).await?,
            Target::Effective(doc) => {
                if let Some(at) = secret::reserved_member_in(&doc) {
                    entry.action = PlanAction::Invalid;
                    entry.errors.push(FieldError {
                        service: Some(service.to_string()),
                        path: at.to_string(),
                        message: "`$secret` is reserved".into(),
                    });
                    plan.ok = false;
                    plan.services.push(entry);
                    continue;
                }
                secret::keep_secrets(doc, &before, &secret_keys)
            }
        };
        if let Some(schema) = &schema
            && let Err(violations) = schema.check(&after)
        {
            entry.action = PlanAction::Invalid;
            entry.errors = violations
                .into_iter()
                .map(|v| FieldError {
                    service: Some(service.to_string()),
                    path: v.path,
                    message: v.message,
                })
                .collect();
            plan.ok = false;
            plan.services.push(entry);
            continue;
        }
        let base = Before {
            version,
            stored: &stored_before,
            effective: &before,
        };
        let change = stage(
            state,
            service,
            &base,
            Some(&after),
            &secret_keys,
            kind,
            principal,
            reason.clone(),
            at,
        )?;
        if change.changes.is_empty() && live_doc.is_some() {
            plan.services.push(entry);
            continue;
        }
        entry.action = if live_doc.is_some() {
            PlanAction::Update
        } else {
            PlanAction::Create
        };
        entry.version = version.next().0;
        entry.changes = change
            .changes
            .iter()
            .map(|c| PlanChange {
                key: c.key.to_string(),
                old: crate::secrets::shown(&c.key, c.old.clone(), &secret_keys),
                new: crate::secrets::shown(&c.key, c.new.clone(), &secret_keys),
            })
            .collect();
        changes.push((plan.services.len(), change, schema));
        plan.services.push(entry);
    }
    Ok(Staged {
        _turns: turns,
        plan,
        changes,
    })
}

impl Staged<'_> {
    /// The document a staged change will store for `service`, if the write changes it.
    pub fn staged_document(&self, service: &ServiceName) -> Option<&Document> {
        self.changes
            .iter()
            .find(|(_, c, _)| &c.service == service)
            .and_then(|(_, c, _)| c.document.as_ref())
    }

    /// The changes the commit will write, in plan order.
    pub fn changes(&self) -> Vec<NewChange> {
        self.changes.iter().map(|(_, c, _)| c.clone()).collect()
    }

    /// The 422 naming every invalid member, for a write that may not go ahead.
    pub fn invalid(&self) -> ApiError {
        let errors: Vec<FieldError> = self
            .plan
            .services
            .iter()
            .flat_map(|s| s.errors.iter().cloned())
            .collect();
        let services: Vec<&str> = self
            .plan
            .services
            .iter()
            .filter(|s| s.action == PlanAction::Invalid)
            .map(|s| s.service.as_str())
            .collect();
        ApiError::Unprocessable {
            detail: format!(
                "nothing was written: the config of {} does not fit its schema",
                services.join(", ")
            ),
            errors,
        }
    }

    /// Commits with `commit` (given [`Staged::changes`]) and announces every committed change;
    /// answers the plan with the versions written. A member that moved since it was read makes
    /// the whole write a 409.
    pub async fn commit<F, Fut>(mut self, state: &AppState, commit: F) -> Result<Plan, ApiError>
    where
        F: FnOnce(Vec<NewChange>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Committed>, StoreError>>,
    {
        let committed = match commit(self.changes()).await {
            Ok(c) => c,
            Err(StoreError::Conflict { current }) => {
                return Err(ApiError::Moved(format!(
                    "a service changed while this write was prepared (it is now at version \
                     {current}); nothing was written — try again"
                )));
            }
            Err(StoreError::Unavailable { reason, source }) => {
                state.write_failure(Some(reason.clone()));
                return Err(ApiError::Unavailable(StoreError::Unavailable {
                    reason,
                    source,
                }));
            }
            Err(other) => return Err(other.into()),
        };
        state.write_failure(None);
        for ((index, change, schema), done) in self.changes.drain(..).zip(committed) {
            self.plan.services[index].version = done.version.0;
            after_commit(
                state,
                Applied {
                    service: change.service,
                    committed: done,
                    kind: change.kind,
                    actor: change.actor,
                    reason: change.reason,
                    at: change.at,
                    document: change.document,
                },
                schema.as_deref(),
            )?;
        }
        Ok(self.plan)
    }
}
