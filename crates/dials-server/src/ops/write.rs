//! The write half: one pipeline for every change — take the service's turn, read its current
//! state, check the caller's preconditions, compute the new document and validate it, stage it
//! (seal secrets, diff, redact: [`stage`]), and hand the store a compare-and-swap from the
//! version read. When another writer got there first, a write that named a version fails with
//! 409; one that did not is computed again from the newer state. After the commit the rest of
//! the process hears of it ([`after_commit`]).

use std::borrow::Cow;
use std::sync::Arc;

use dials_domain::{
    ChangeKind, Document, InstanceName, KeyPath, ServiceName, Version, diff, merge_patch, secret,
};
use dials_schema::CompiledSchema;
use dials_store::{NewChange, ServiceState, StoreError};
use dials_wire::ConfigResponse;
use serde_json::Value;
use time::OffsetDateTime;

use super::read::{cache_entry, not_found, response_of, tombstone};
use crate::extract::IfMatch;
use crate::{ApiError, AppState, Principal};

/// How many times a write without an expected version is recomputed after losing a race.
/// Writes through this process never race each other (see [`super::WriteLocks`]); only a
/// writer outside it, or a queued write before it failing, could make a write lose, so running
/// out of attempts means "busy", not a bug.
const MAX_ATTEMPTS: usize = 32;

/// What a write does to the document.
#[derive(Debug, Clone)]
pub enum Intent {
    /// Replace the document.
    Put(Document),
    /// Apply an RFC 7396 merge patch.
    Patch(Value),
    /// Write an earlier version again.
    RestoreVersion(Version),
    /// Write the state as of an instant again.
    RestoreAt(OffsetDateTime),
    /// Remove the service, keeping its history.
    Delete,
    /// Set the secret at a key the schema marks `x-secret`.
    SetSecret(KeyPath, Value),
    /// Remove the secret at a key.
    DeleteSecret(KeyPath),
}

impl Intent {
    pub(crate) fn kind(&self) -> ChangeKind {
        match self {
            Intent::Put(_) => ChangeKind::Put,
            Intent::Patch(_) => ChangeKind::Patch,
            Intent::RestoreVersion(_) | Intent::RestoreAt(_) => ChangeKind::Restore,
            Intent::Delete => ChangeKind::Delete,
            Intent::SetSecret(..) | Intent::DeleteSecret(_) => ChangeKind::Secret,
        }
    }
}

/// The caller's preconditions on a write.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    /// `expected_version` in the body: a mismatch is 409.
    pub expected_version: Option<Version>,
    /// `If-Match`: a mismatch is 412.
    pub if_match: Option<IfMatch>,
    /// `If-None-Match: *`: create only; writing to a live service is 412.
    pub create_only: bool,
}

impl Preconditions {
    /// Combines body and header preconditions; they must agree.
    pub fn new(
        expected_version: Option<u64>,
        conditions: crate::extract::Conditions,
    ) -> Result<Self, ApiError> {
        let expected_version = expected_version.map(Version);
        if let (Some(e), Some(m)) = (
            expected_version,
            conditions.if_match.as_ref().and_then(IfMatch::version),
        ) && e != m
        {
            return Err(ApiError::BadRequest(format!(
                "expected_version {e} and If-Match {m} disagree; send one of them"
            )));
        }
        if conditions.create_only && (expected_version.is_some() || conditions.if_match.is_some()) {
            return Err(ApiError::BadRequest(
                "If-None-Match: * creates a service; it cannot be combined with If-Match or a \
                 version"
                    .into(),
            ));
        }
        Ok(Self {
            expected_version,
            if_match: conditions.if_match,
            create_only: conditions.create_only,
        })
    }

    /// Whether the write is pinned to a version: then losing a race fails it instead of
    /// computing it again.
    fn pinned(&self) -> bool {
        self.expected_version.is_some()
            || matches!(self.if_match, Some(IfMatch::Versions(_) | IfMatch::Weak(_)))
    }

    pub(crate) fn check(&self, current: Version, live: bool) -> Result<(), ApiError> {
        match &self.if_match {
            Some(IfMatch::Versions(tags)) if !tags.contains(&current) => {
                let asked: Vec<String> = tags.iter().map(|v| format!("\"{v}\"")).collect();
                return Err(ApiError::PreconditionFailed {
                    detail: format!(
                        "If-Match {} failed: the service is at version {current}",
                        asked.join(", ")
                    ),
                    current,
                });
            }
            Some(IfMatch::Weak(text)) => {
                return Err(ApiError::PreconditionFailed {
                    detail: format!(
                        "If-Match {text} failed: a weak ETag never matches If-Match (strong \
                         comparison, RFC 9110); send \"{current}\""
                    ),
                    current,
                });
            }
            Some(IfMatch::Any) if !live => {
                return Err(ApiError::PreconditionFailed {
                    detail: "If-Match: * failed: the service does not exist".into(),
                    current,
                });
            }
            _ => {}
        }
        if let Some(expected) = self.expected_version
            && expected != current
        {
            return Err(ApiError::Conflict { expected, current });
        }
        if self.create_only && live {
            return Err(ApiError::PreconditionFailed {
                detail: format!("If-None-Match: * failed: the service exists at version {current}"),
                current,
            });
        }
        Ok(())
    }
}

/// Applies one change with optimistic locking. Answers the state after the write (`None`
/// after a delete); a write that changes nothing writes no version and answers the current state.
///
/// Secrets: the change is computed on the effective document (secret values in clear, opened
/// from the store), validated as such, then sealed again: a secret the change did not touch
/// keeps its placeholder, a new value is sealed under the version being written, and history
/// records placeholders only.
pub async fn write(
    state: &AppState,
    service: &ServiceName,
    principal: &Principal,
    intent: Intent,
    pre: Preconditions,
    reason: Option<String>,
) -> Result<Option<ConfigResponse>, ApiError> {
    let reserved = match &intent {
        Intent::Put(doc) => secret::reserved_member_in(doc),
        Intent::Patch(value) | Intent::SetSecret(_, value) => secret::reserved_member(value),
        _ => None,
    };
    if let Some(at) = reserved {
        return Err(crate::secrets::reserved(at));
    }
    // An ordinary write may be computed on top of the service's queued writes and queue
    // behind them (see `super::turns`); one with a precondition is checked against durable
    // state only.
    let ordinary = matches!(intent, Intent::Put(_) | Intent::Patch(_))
        && pre.if_match.is_none()
        && pre.expected_version.is_none()
        && !pre.create_only;
    for _ in 0..MAX_ATTEMPTS {
        // The turn comes first: the schema read below must be the one in force when this write
        // commits, not one a registration waiting ahead of it is about to replace.
        let turn = state.write_locks.turn(service).await;
        let schema = crate::schemas::schema_of(state, service).await?;
        let secret_keys = crate::secrets::keys_of(schema.as_deref());
        // A secret a queued write seals is not in the store until it commits, so a service
        // with secrets is always written on its durable state.
        let queue = ordinary && secret_keys.is_empty();
        let mut pending = None;
        if queue {
            pending = turn.pending();
        } else {
            turn.drain().await;
        }
        let change = loop {
            let on_pending = pending.is_some();
            let current = match pending.take() {
                Some(queued) => Some(queued),
                None => state.store.service(service).await?,
            };
            let base = current.as_ref().map(|c| (c.version, c.revision));
            match compute(
                state,
                service,
                principal,
                &intent,
                &pre,
                schema.as_deref(),
                &secret_keys,
                current,
                reason.clone(),
            )
            .await?
            {
                // "Nothing changes" is answered from durable state only.
                Computed::Unchanged(_) if on_pending => turn.drain().await,
                Computed::Unchanged(response) => return Ok(Some(response)),
                Computed::Change(change) => break (change, base),
            }
        };
        let (change, base) = change;
        // What the service will be once this change commits, for the writes queued behind it.
        let after = queue.then(|| ServiceState {
            name: service.clone(),
            version: base.map_or(Version::NONE, |(v, _)| v).next(),
            revision: base.map_or(dials_domain::Revision(0), |(_, r)| r),
            document: change.document.clone(),
            updated_at: change.at,
            updated_by: change.actor.clone(),
        });
        let (kind, actor, at, document) = (
            change.kind,
            change.actor.clone(),
            change.at,
            change.document.clone(),
        );
        let done = |committed| Applied {
            service: service.clone(),
            committed,
            kind,
            actor,
            reason: reason.clone(),
            at,
            document,
        };
        let started = std::time::Instant::now();
        // A queued change hands the service's turn on as soon as it is queued; the next write's
        // outcome waits for this one's.
        let (result, queued) = match after {
            Some(after) => match state.store.enqueue(change) {
                Ok(commit) => {
                    let queued = turn.queued(after);
                    (commit.await, Some(queued))
                }
                Err(change) => (state.store.commit(*change).await, None),
            },
            None => (state.store.commit(change).await, None),
        };
        crate::metrics::store_commit(started.elapsed());
        if let Some(mut queued) = queued {
            if result.is_err() {
                queued.failed();
            }
            queued.in_order().await;
        }
        let step = settle(state, result, done, &pre, schema.as_deref())?;
        if let Step::Done(answer) = step {
            return Ok(answer);
        }
    }
    Err(ApiError::Busy(format!(
        "service {service} is being written by another process too often to get a turn"
    )))
}

/// What a write computed from the service's current state.
enum Computed {
    /// Nothing changes: no new version, no history, nothing to publish; the current state.
    Unchanged(ConfigResponse),
    /// The change to commit.
    Change(NewChange),
}

/// Checks the caller's preconditions against `current`, computes the new document, validates
/// it and stages it.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one write, each used once"
)]
async fn compute(
    state: &AppState,
    service: &ServiceName,
    principal: &Principal,
    intent: &Intent,
    pre: &Preconditions,
    schema: Option<&CompiledSchema>,
    secret_keys: &[KeyPath],
    current: Option<ServiceState>,
    reason: Option<String>,
) -> Result<Computed, ApiError> {
    let version = current.as_ref().map_or(Version::NONE, |s| s.version);
    let live_doc = current.as_ref().and_then(|s| s.document.as_ref());
    pre.check(version, live_doc.is_some())?;

    let empty = Document::new();
    let stored_before = live_doc.unwrap_or(&empty);
    let before = crate::secrets::unsealed_ref(state, service, stored_before).await?;
    if matches!(intent, Intent::Put(_) | Intent::Patch(_))
        && live_doc.is_none()
        && !pre.create_only
        && schema.is_none()
    {
        return Err(ApiError::NotFound(format!(
            "service {service} does not exist; create it with the header `If-None-Match: *`"
        )));
    }
    let after = document_after(
        state,
        service,
        Subject::Service(service),
        intent,
        live_doc.is_some(),
        &before,
        secret_keys,
    )
    .await?;
    if current.is_none() && matches!(intent, Intent::RestoreVersion(_) | Intent::RestoreAt(_)) {
        return Err(not_found(service));
    }

    if let (Some(schema), Some(document)) = (schema, &after) {
        schema
            .check(document)
            .map_err(|violations| invalid(service, violations))?;
    }

    let base = Before {
        version,
        stored: stored_before,
        effective: &before,
    };
    let change = stage(
        state,
        service,
        &base,
        after.as_deref(),
        secret_keys,
        intent.kind(),
        principal,
        reason,
        now(),
    )?;
    if let (Some(state_now), true) = (
        &current,
        change.changes.is_empty() && after.is_some() && live_doc.is_some(),
    ) {
        return Ok(Computed::Unchanged(response_of(state, state_now, schema)?));
    }
    Ok(Computed::Change(change))
}

/// What a write is to, as its answers name it: a service, or one instance's override of it.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A service's document.
    Service(&'a ServiceName),
    /// The override document of an instance of a service.
    Override(&'a ServiceName, &'a InstanceName),
}

impl Subject<'_> {
    fn describe(&self) -> String {
        match self {
            Subject::Service(service) => format!("service {service}"),
            Subject::Override(service, instance) => {
                format!("the override of instance {instance} of {service}")
            }
        }
    }

    /// The 404 of a deletion of something that is not there.
    fn missing(&self) -> ApiError {
        match self {
            Subject::Service(service) => not_found(service),
            Subject::Override(service, instance) => super::layers::no_override(service, instance),
        }
    }
}

/// The document a write leaves behind, computed on `before`, the current document with its
/// secrets opened (empty when there is none; `live` says whether there is): a secret the
/// intent does not touch keeps its value, a restore opens the old version's secrets. `None`
/// for a deletion. `id` is the store's name of the document (a service, or an override's id).
/// Every write computes its document here, a service's ([`write`]) and an override's
/// ([`super::write_override`]).
pub async fn document_after<'i>(
    state: &AppState,
    id: &ServiceName,
    subject: Subject<'_>,
    intent: &'i Intent,
    live: bool,
    before: &Document,
    secret_keys: &[KeyPath],
) -> Result<Option<Cow<'i, Document>>, ApiError> {
    Ok(match intent {
        Intent::Delete if !live => return Err(subject.missing()),
        Intent::Delete => None,
        // Without secret keys there is nothing to keep: the document written is the one sent,
        // read where it is rather than copied.
        Intent::Put(doc) if secret_keys.is_empty() => Some(Cow::Borrowed(doc)),
        Intent::Put(doc) => Some(Cow::Owned(secret::keep_secrets(
            doc.clone(),
            before,
            secret_keys,
        ))),
        Intent::Patch(patch) => {
            let mut patch = patch.clone();
            secret::keep_secrets_in_patch(&mut patch, secret_keys);
            Some(Cow::Owned(merge_patch(before, &patch)?))
        }
        Intent::RestoreVersion(v) => {
            let old = restorable(state.store.version(id, *v).await?, || {
                format!("{} has no version {v}", subject.describe())
            })?;
            Some(Cow::Owned(
                restored(state, id, &old, before, secret_keys).await?,
            ))
        }
        Intent::RestoreAt(at) => {
            let old = restorable(state.store.version_at(id, *at).await?, || {
                format!("{} had no version at or before {at}", subject.describe())
            })?;
            Some(Cow::Owned(
                restored(state, id, &old, before, secret_keys).await?,
            ))
        }
        Intent::SetSecret(key, value) => {
            let mut doc = before.clone();
            doc.set(key, value.clone());
            Some(Cow::Owned(doc))
        }
        Intent::DeleteSecret(key) => {
            let mut doc = before.clone();
            if doc.remove(key).is_none() {
                return Err(ApiError::NotFound(format!(
                    "{} has no secret set at {key}",
                    subject.describe()
                )));
            }
            Some(Cow::Owned(doc))
        }
    })
}

/// What comes of a commit: the answer, or another attempt.
enum Step {
    Done(Option<ConfigResponse>),
    Retry,
}

/// Turns a commit's outcome into the write's answer: after a commit the rest of the process
/// hears of it; a lost race fails a pinned write and sends an ordinary one round again.
fn settle(
    state: &AppState,
    result: Result<dials_store::Committed, StoreError>,
    done: impl FnOnce(dials_store::Committed) -> Applied,
    pre: &Preconditions,
    schema: Option<&CompiledSchema>,
) -> Result<Step, ApiError> {
    match result {
        Ok(committed) => {
            state.write_failure(None);
            after_commit(state, done(committed), schema).map(Step::Done)
        }
        Err(error) => {
            retry_after(state, error, pre)?;
            Ok(Step::Retry)
        }
    }
}

/// A commit that did not land: a write that lost a race to another writer is computed again
/// (`Ok`) unless it was pinned to a version, which fails it with the precondition that no
/// longer holds; a database that cannot take the write is 503 and shows in the status.
pub fn retry_after(
    state: &AppState,
    error: StoreError,
    pre: &Preconditions,
) -> Result<(), ApiError> {
    match error {
        StoreError::Conflict { current } if pre.pinned() => {
            // The version matched when read but another writer committed first: the same
            // precondition, checked against the version that won, names the failure.
            Err(pre.check(current, true).err().unwrap_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("a pinned write lost to its own version"))
            }))
        }
        StoreError::Conflict { .. } => Ok(()),
        StoreError::Unavailable { reason, source } => {
            state.write_failure(Some(reason.clone()));
            Err(ApiError::Unavailable(StoreError::Unavailable {
                reason,
                source,
            }))
        }
        other => Err(other.into()),
    }
}

/// A service as it is before a write: its version, its stored document (placeholders where
/// secrets are), and the same document with its secrets opened.
#[derive(Debug, Clone, Copy)]
pub struct Before<'a> {
    /// The version the change is computed from (its compare-and-swap base).
    pub version: Version,
    /// The document as stored.
    pub stored: &'a Document,
    /// The document with its secrets opened: what the change was computed on.
    pub effective: &'a Document,
}

/// The staging step every write shares, whoever computed the new document (a PUT, a patch, a
/// restore, a schema migration): seal the effective document written (an untouched secret keeps
/// its placeholder, a new value is sealed under the version being written), diff it against
/// the stored one with secrets redacted, and build the change the store commits. `after` is
/// `None` for a deletion. A change with no `changes` writes nothing new; the caller decides
/// whether it still commits (a first, empty document does).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per kind of write, each naming every part"
)]
pub fn stage(
    state: &AppState,
    service: &ServiceName,
    before: &Before<'_>,
    after: Option<&Document>,
    secret_keys: &[KeyPath],
    kind: ChangeKind,
    principal: &Principal,
    reason: Option<String>,
    at: OffsetDateTime,
) -> Result<NewChange, ApiError> {
    let next = before.version.next();
    let (stored_after, new_secrets) = match after {
        Some(a) => {
            let sealed = secret::seal(a, before.stored, before.effective, secret_keys, next);
            (Some(sealed.document), sealed.new_secrets)
        }
        None => (None, Vec::new()),
    };
    let mut changes = diff(
        before.stored,
        stored_after.as_ref().unwrap_or(&Document::new()),
    );
    secret::redact_changes(&mut changes, secret_keys);
    let actor = principal.actor().to_owned();
    let secrets = crate::secrets::seal_new(state, service, next, &new_secrets, &actor, at)?;
    Ok(NewChange {
        service: service.clone(),
        base_version: before.version,
        kind,
        document: stored_after,
        changes,
        actor,
        reason,
        at,
        origin: principal.address.map(|a| a.to_string()),
        secrets,
    })
}

/// A change the store committed, with what the rest of the process needs to hear of it.
#[derive(Debug)]
pub struct Applied {
    /// The service.
    pub service: ServiceName,
    /// Version and revision.
    pub committed: dials_store::Committed,
    /// What kind of change.
    pub kind: ChangeKind,
    /// Who made it.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: OffsetDateTime,
    /// The stored document, `None` after a delete.
    pub document: Option<Document>,
}

/// After a commit: wakes the publisher, tells watchers, refreshes the caches, and answers the
/// new state as GET shows it.
pub fn after_commit(
    state: &AppState,
    done: Applied,
    schema: Option<&CompiledSchema>,
) -> Result<Option<ConfigResponse>, ApiError> {
    let record = dials_store::VersionRecord {
        service: done.service,
        version: done.committed.version,
        revision: done.committed.revision,
        kind: done.kind,
        document: done.document,
        actor: done.actor,
        reason: done.reason,
        at: done.at,
    };
    announce(state, record.kind, || dials_store::OutboxItem {
        id: done.committed.outbox,
        revision: record.revision,
        service: record.service.clone(),
        version: record.version,
        kind: record.kind,
        document: record.document.clone(),
        actor: record.actor.clone(),
        at: record.at,
    });
    // On a database shared by several replicas, another one may commit between two of this
    // one's: watchers are told by the follower, which reads every replica's changes in
    // revision order.
    show(state, record, schema, !state.replica.shared)
}

/// What every commit of a change is followed by: it is counted, the snapshot is due, and the
/// publisher hears of it ([`hand_to_publisher`]).
pub fn announce(
    state: &AppState,
    kind: ChangeKind,
    item: impl FnOnce() -> dials_store::OutboxItem,
) {
    crate::metrics::committed(kind);
    state.snapshot_due.notify_one();
    hand_to_publisher(state, item);
}

/// Tells the publisher about a change just committed. On a database of its own it is handed
/// the change (`item`), to publish without reading it back; on one shared by several replicas
/// the outbox holds every replica's changes in order, so the publisher (if this replica is the
/// one publishing) reads it there, and the follower is poked to show the change.
fn hand_to_publisher(state: &AppState, item: impl FnOnce() -> dials_store::OutboxItem) {
    if state.replica.shared {
        state.replica.committed_here();
        if let Some(publisher) = &state.publisher {
            publisher.store_changed();
        }
    } else if let Some(publisher) = &state.publisher {
        publisher.committed(item());
    }
}

/// Hands a committed change to this process's watch streams, its secrets masked.
pub fn tell_watchers(
    state: &AppState,
    record: &dials_store::VersionRecord,
    schema: Option<&CompiledSchema>,
) {
    if !state.events.has_subscribers() {
        return;
    }
    state.events.publish(&dials_wire::WatchEvent {
        revision: record.revision.0,
        service: record.service.to_string(),
        version: record.version.0,
        kind: record.kind.as_str().to_owned(),
        actor: record.actor.clone(),
        reason: record.reason.clone(),
        at: record.at,
        epoch: state.epoch.0,
        config: record
            .document
            .as_ref()
            .map(|d| secret::mask(d, &crate::secrets::keys_of(schema)).into_value())
            .unwrap_or(Value::Null),
    });
}

/// Shows a committed change to this process's readers: the search index is rebuilt, the cache
/// moves on to it (never back: an entry holding a newer version stays), watchers get its event
/// when `tell_watchers`. Answers the new state as GET shows it (`None` after a delete).
pub fn show(
    state: &AppState,
    record: dials_store::VersionRecord,
    schema: Option<&CompiledSchema>,
    tell_watchers: bool,
) -> Result<Option<ConfigResponse>, ApiError> {
    state.schemas.invalidate_search();
    if tell_watchers {
        self::tell_watchers(state, &record, schema);
    }
    let Some(document) = record.document else {
        let stamp = state.configs.stamp();
        state
            .configs
            .put(&record.service, Arc::new(tombstone(record.version)), stamp);
        return Ok(None);
    };
    let new_state = ServiceState {
        name: record.service.clone(),
        version: record.version,
        revision: record.revision,
        document: Some(document),
        updated_at: record.at,
        updated_by: record.actor,
    };
    let response = response_of(state, &new_state, schema)?;
    let stamp = state.configs.stamp();
    state
        .configs
        .put(&record.service, Arc::new(cache_entry(&response)?), stamp);
    Ok(Some(response))
}

/// The 422 for a document that violates its service's schema.
pub fn invalid(service: &ServiceName, violations: Vec<dials_schema::Violation>) -> ApiError {
    let n = violations.len();
    ApiError::Unprocessable {
        detail: format!(
            "the config of {service} does not fit its schema ({n} problem{})",
            if n == 1 { "" } else { "s" }
        ),
        errors: violations
            .into_iter()
            .map(|v| dials_wire::FieldError {
                service: None,
                path: v.path,
                message: v.message,
            })
            .collect(),
    }
}

/// Now, at the microsecond precision every store keeps, so a write's answer and its history
/// show the same instant.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// What restoring a stored version writes: its secrets opened, and where it holds the mask (a
/// value redacted when its key became secret) the secret in force now.
pub(crate) async fn restored(
    state: &AppState,
    service: &ServiceName,
    old: &Document,
    current: &Document,
    secret_keys: &[KeyPath],
) -> Result<Document, ApiError> {
    let opened = crate::secrets::unsealed(state, service, old).await?;
    Ok(secret::keep_masked_secrets(opened, current, secret_keys))
}

pub(crate) fn restorable(
    record: Option<dials_store::VersionRecord>,
    missing: impl FnOnce() -> String,
) -> Result<Document, ApiError> {
    let record = record.ok_or_else(|| ApiError::NotFound(missing()))?;
    record.document.ok_or_else(|| ApiError::Unprocessable {
        detail: format!(
            "version {} is the service's deletion; restore a version before it",
            record.version
        ),
        errors: Vec::new(),
    })
}
