//! Read-only mode: when the database cannot be opened or read — at start or while running —
//! the manager serves reads from its signed snapshot (and its caches), refuses every write with
//! 503, says so in `/api/v1/status` and on the health topic, and goes back to normal by itself
//! once the database file is healthy again.
//!
//! [`ModalStore`] is the [`Store`] every handler and the publisher use: in normal mode it hands
//! each call to the database; in read-only mode reads come from the snapshot and writes are
//! refused as unavailable, naming the cause. [`check`] decides the mode, from the database
//! file as a fresh connection sees it (gone, emptied, replaced, unreadable, corrupt, locked) and
//! from the open store's own file check; [`watch_forever`] runs it in the background, and
//! `/api/v1/status` runs it before answering.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dials_domain::{Epoch, ServiceName, Version};
use dials_store::{
    AuditQuery, AuditRecord, ChangeRecord, Committed, ConfigReads, ConfigWrites, Database,
    HistoryQuery, HistoryRecord, ImportBatch, InstanceLimits, InstanceReport, InstanceStore,
    NewChange, OutboxItem, OutboxStore, ProfileRecord, ProfileStore, RecordedReports, Redaction,
    ResealFn, Result, SchemaRecord, SecretRecord, SecretStore, SecurityStore, ServiceState,
    SessionRecord, Store, StoreError, TokenRecord, Transfer, VersionRecord,
};

use crate::snapshot::Snapshot;
use crate::{ApiError, AppState};

/// What to do about a database that is gone.
const RECOVER: &str = "put it back (dials returns to normal by itself), or stop dials and \
    restore a backup, run `dials rebuild` (from the snapshot), or start with --init (a new \
    empty database with a new epoch)";

/// How often the database file is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The store in whichever mode the manager is in.
#[derive(Debug)]
pub struct ModalStore {
    /// The opened database, when there is one.
    live: RwLock<Option<Arc<dyn Store>>>,
    /// Why the manager is read-only, when it is.
    reason: RwLock<Option<String>>,
    /// The snapshot reads fall back to.
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    epoch: Epoch,
    backend: &'static str,
    created: bool,
    shared: bool,
}

impl ModalStore {
    /// Normal mode over an opened database.
    pub fn normal(store: Arc<dyn Store>, snapshot: Option<Snapshot>) -> Self {
        Self {
            epoch: store.epoch(),
            backend: store.backend(),
            created: store.created(),
            shared: store.shared(),
            live: RwLock::new(Some(store)),
            reason: RwLock::new(None),
            snapshot: RwLock::new(snapshot.map(Arc::new)),
        }
    }

    /// Read-only mode from a snapshot, without a database.
    pub fn read_only_from(snapshot: Snapshot, reason: String) -> Self {
        Self {
            epoch: snapshot.epoch(),
            backend: "sqlite",
            shared: false,
            created: false,
            live: RwLock::new(None),
            reason: RwLock::new(Some(reason)),
            snapshot: RwLock::new(Some(Arc::new(snapshot))),
        }
    }

    /// Why the manager is read-only, or `None` in normal mode.
    pub fn read_only(&self) -> Option<String> {
        self.reason
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The snapshot reads fall back to.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A newer snapshot, just written.
    pub fn set_snapshot(&self, snapshot: Arc<Snapshot>) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
    }

    /// The opened database, whatever the mode.
    fn opened(&self) -> Option<Arc<dyn Store>> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The database, in normal mode only.
    fn live(&self) -> Option<Arc<dyn Store>> {
        if self.read_only().is_some() {
            return None;
        }
        self.opened()
    }

    /// Sets the mode; answers whether it changed.
    fn set_reason(&self, why: Option<String>) -> bool {
        let mut reason = self.reason.write().unwrap_or_else(PoisonError::into_inner);
        if *reason == why {
            return false;
        }
        match (&*reason, &why) {
            (None, Some(why)) => {
                tracing::error!(reason = %why, "read-only mode: writes are refused, reads are served from the snapshot")
            }
            (Some(_), Some(why)) => tracing::warn!(reason = %why, "still read-only"),
            (_, None) => tracing::info!("the database is healthy again: back to normal mode"),
        }
        *reason = why;
        true
    }

    fn refusal(&self) -> StoreError {
        StoreError::Unavailable {
            reason: format!(
                "dials is read-only: {}",
                self.read_only()
                    .unwrap_or_else(|| "the database is not open".into())
            ),
            source: None,
        }
    }

    fn not_in_snapshot(&self, what: &str) -> StoreError {
        StoreError::Unavailable {
            reason: format!(
                "dials is read-only ({}); {what} is not in the snapshot and is served again \
                 once the database is back",
                self.read_only()
                    .unwrap_or_else(|| "the database is not open".into())
            ),
            source: None,
        }
    }

    fn held(&self) -> Arc<Snapshot> {
        self.snapshot().unwrap_or_else(|| {
            Arc::new(Snapshot {
                format: 1,
                epoch: self.epoch.0,
                revision: 0,
                schema_version: 0,
                taken_at: time::OffsetDateTime::now_utc(),
                services: Vec::new(),
                schemas: Vec::new(),
                tokens: Vec::new(),
            })
        })
    }
}

/// Calls the database in normal mode, or answers `$else` in read-only mode.
macro_rules! live_or {
    ($self:ident, $store:ident => $call:expr, else $fallback:expr) => {
        match $self.live() {
            Some($store) => $call,
            None => $fallback,
        }
    };
}

#[async_trait]
impl Database for ModalStore {
    fn backend(&self) -> &'static str {
        self.backend
    }
    fn epoch(&self) -> Epoch {
        self.epoch
    }
    fn created(&self) -> bool {
        self.created
    }
    async fn schema_version(&self) -> Result<i64> {
        live_or!(self, s => s.schema_version().await, else Ok(self.held().schema_version))
    }
    async fn ping(&self) -> Result<()> {
        live_or!(self, s => s.ping().await, else Err(self.refusal()))
    }
    async fn close(&self) {
        if let Some(store) = self.opened() {
            store.close().await;
        }
    }
    fn shared(&self) -> bool {
        self.shared
    }
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        live_or!(self, s => s.claim_lease(name, holder, ttl).await, else Err(self.refusal()))
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        live_or!(self, s => s.release_lease(name, holder).await, else Ok(()))
    }
    async fn notices(&self) -> Result<Option<tokio::sync::mpsc::Receiver<dials_store::Notice>>> {
        live_or!(self, s => s.notices().await, else Err(self.refusal()))
    }
}

#[async_trait]
impl ConfigReads for ModalStore {
    async fn service(&self, name: &ServiceName) -> Result<Option<ServiceState>> {
        live_or!(self, s => s.service(name).await, else Ok(self
            .held()
            .service_states()
            .into_iter()
            .find(|s| &s.name == name)))
    }
    async fn services(&self) -> Result<Vec<ServiceState>> {
        live_or!(self, s => s.services().await, else Ok(self.held().service_states()))
    }
    async fn version(&self, name: &ServiceName, version: Version) -> Result<Option<VersionRecord>> {
        live_or!(self, s => s.version(name, version).await, else Err(self.not_in_snapshot("an older version")))
    }
    async fn version_at(
        &self,
        name: &ServiceName,
        at: time::OffsetDateTime,
    ) -> Result<Option<VersionRecord>> {
        live_or!(self, s => s.version_at(name, at).await, else Err(self.not_in_snapshot("an older version")))
    }
    async fn schema(&self, name: &ServiceName) -> Result<Option<SchemaRecord>> {
        live_or!(self, s => s.schema(name).await, else Ok(self
            .held()
            .schema_records()
            .into_iter()
            .find(|s| &s.service == name)))
    }
    async fn schemas(&self) -> Result<Vec<SchemaRecord>> {
        live_or!(self, s => s.schemas().await, else Ok(self.held().schema_records()))
    }
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>> {
        live_or!(self, s => s.history(query).await, else Err(self.not_in_snapshot("history")))
    }
    async fn latest_revision(&self) -> Result<u64> {
        live_or!(self, s => s.latest_revision().await, else Ok(self.held().revision))
    }
    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        live_or!(self, s => s.changes_since(after, limit).await, else {
            // Nothing changes while read-only: a watch that is up to date waits quietly.
            if after >= self.held().revision {
                Ok(Vec::new())
            } else {
                Err(self.not_in_snapshot("the change log"))
            }
        })
    }
}

#[async_trait]
impl ConfigWrites for ModalStore {
    async fn commit(&self, change: NewChange) -> Result<Committed> {
        live_or!(self, s => s.commit(change).await, else Err(self.refusal()))
    }
    fn enqueue(
        &self,
        change: NewChange,
    ) -> std::result::Result<dials_store::QueuedCommit, Box<NewChange>> {
        match self.live() {
            Some(s) => s.enqueue(change),
            None => {
                let refusal = self.refusal();
                Ok(Box::pin(async move { Err(refusal) }))
            }
        }
    }
    async fn commit_many(&self, changes: Vec<NewChange>) -> Result<Vec<Committed>> {
        live_or!(self, s => s.commit_many(changes).await, else Err(self.refusal()))
    }
    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        live_or!(self, s => s.put_schema(record, migration, redaction).await, else Err(self.refusal()))
    }
}

#[async_trait]
impl OutboxStore for ModalStore {
    // Read-only, the outbox cannot be read: the publisher republishes the latest envelopes
    // from the snapshot, and what waits in the outbox is published once the database is back.
    async fn outbox_backlog(&self) -> Result<u64> {
        live_or!(self, s => s.outbox_backlog().await, else Ok(0))
    }
    async fn pending_outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>> {
        live_or!(self, s => s.pending_outbox(after, limit).await, else Ok(Vec::new()))
    }
    async fn pending_services(&self) -> Result<Vec<ServiceName>> {
        live_or!(self, s => s.pending_services().await, else Ok(Vec::new()))
    }
    async fn mark_published(&self, ids: &[i64], at: time::OffsetDateTime) -> Result<()> {
        live_or!(self, s => s.mark_published(ids, at).await, else Ok(()))
    }
}

#[async_trait]
impl InstanceStore for ModalStore {
    async fn record_instances(
        &self,
        reports: &[InstanceReport],
        limits: &InstanceLimits,
    ) -> Result<RecordedReports> {
        live_or!(self, s => s.record_instances(reports, limits).await, else Err(self.refusal()))
    }
    async fn instances(
        &self,
        service: &ServiceName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InstanceReport>> {
        live_or!(self, s => s.instances(service, after, limit).await, else Err(self.not_in_snapshot("what instances reported")))
    }
    async fn all_instances(&self) -> Result<Vec<InstanceReport>> {
        // The service list goes on without its instance counts.
        live_or!(self, s => s.all_instances().await, else Ok(Vec::new()))
    }
    async fn forget_instance(&self, service: &ServiceName, instance: &str) -> Result<bool> {
        live_or!(self, s => s.forget_instance(service, instance).await, else Err(self.refusal()))
    }
}

#[async_trait]
impl SecurityStore for ModalStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        live_or!(self, s => s.insert_token(token).await, else Err(self.refusal()))
    }
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        live_or!(self, s => s.token_by_hash(hash).await, else Ok(self
            .held()
            .token_records()
            .into_iter()
            .find(|t| &t.hash == hash)))
    }
    async fn token_by_id(&self, id: uuid::Uuid) -> Result<Option<TokenRecord>> {
        live_or!(self, s => s.token_by_id(id).await, else Ok(self
            .held()
            .token_records()
            .into_iter()
            .find(|t| t.id == id)))
    }
    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        live_or!(self, s => s.tokens().await, else Ok(self.held().token_records()))
    }
    async fn revoke_token(&self, id: uuid::Uuid, at: time::OffsetDateTime) -> Result<bool> {
        live_or!(self, s => s.revoke_token(id, at).await, else Err(self.refusal()))
    }
    async fn touch_token(&self, id: uuid::Uuid, at: time::OffsetDateTime) -> Result<()> {
        // A token's last use is not recorded while read-only; the token works.
        live_or!(self, s => s.touch_token(id, at).await, else Ok(()))
    }
    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        live_or!(self, s => s.insert_session(session).await, else Err(self.refusal()))
    }
    async fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        live_or!(self, s => s.session(hash).await, else Err(self.not_in_snapshot("a browser session")))
    }
    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        live_or!(self, s => s.delete_session(hash).await, else Err(self.refusal()))
    }
    async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        live_or!(self, s => s.insert_audit(record).await, else Err(self.refusal()))
    }
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        live_or!(self, s => s.audit(query).await, else Err(self.not_in_snapshot("the access log")))
    }
    async fn prune(&self, before: time::OffsetDateTime, keep_at_most: u64) -> Result<u64> {
        live_or!(self, s => s.prune(before, keep_at_most).await, else Err(self.refusal()))
    }
}

#[async_trait]
impl SecretStore for ModalStore {
    async fn secrets(
        &self,
        service: &ServiceName,
        places: &[(String, Version)],
    ) -> Result<Vec<SecretRecord>> {
        live_or!(self, s => s.secrets(service, places).await, else Err(self.not_in_snapshot("a secret value")))
    }
    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        live_or!(self, s => s.secret_key_ids().await, else Err(self.not_in_snapshot("secret key ids")))
    }
    async fn reseal_secrets(&self, reseal: &ResealFn<'_>) -> Result<u64> {
        live_or!(self, s => s.reseal_secrets(reseal).await, else Err(self.refusal()))
    }
}

#[async_trait]
impl ProfileStore for ModalStore {
    async fn save_profile(&self, profile: &ProfileRecord, overwrite: bool) -> Result<bool> {
        live_or!(self, s => s.save_profile(profile, overwrite).await, else Err(self.refusal()))
    }
    async fn profiles(&self) -> Result<Vec<ProfileRecord>> {
        live_or!(self, s => s.profiles().await, else Err(self.not_in_snapshot("profiles")))
    }
    async fn profile(&self, name: &str) -> Result<Option<ProfileRecord>> {
        live_or!(self, s => s.profile(name).await, else Err(self.not_in_snapshot("profiles")))
    }
    async fn delete_profile(&self, name: &str) -> Result<bool> {
        live_or!(self, s => s.delete_profile(name).await, else Err(self.refusal()))
    }
    async fn import(&self, batch: ImportBatch) -> Result<Vec<Committed>> {
        live_or!(self, s => s.import(batch).await, else Err(self.refusal()))
    }
}

#[async_trait]
impl Transfer for ModalStore {
    async fn export(&self) -> Result<dials_store::Dump> {
        live_or!(self, s => s.export().await, else Err(self.not_in_snapshot("the whole database")))
    }
    async fn import_all(&self, dump: &dials_store::Dump) -> Result<()> {
        live_or!(self, s => s.import_all(dump).await, else Err(self.refusal()))
    }
}

/// What is wrong with the database file, as a fresh connection sees it: `None` when it is a
/// readable dials database of epoch `epoch`.
fn probe_file(path: &std::path::Path, epoch: Epoch) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) => {
            return Some(format!(
                "the database file {shown} is gone ({e}); {RECOVER}"
            ));
        }
        Ok(meta) if meta.len() == 0 => {
            return Some(format!("the database file {shown} is empty; {RECOVER}"));
        }
        // Checked by its mode as well as by opening it: the superuser opens any file, and a
        // database its owner may not read and write is not one to go on with.
        Ok(meta) if meta.permissions().mode() & 0o600 != 0o600 => {
            return Some(format!(
                "the database file {shown} may not be read and written by its owner (mode {:o})",
                meta.permissions().mode() & 0o777
            ));
        }
        Ok(_) => {}
    }
    match dials_store::backup::facts(path) {
        Err(e) => Some(format!("cannot read the database file {shown}: {e}")),
        Ok(facts) if facts.epoch != epoch => Some(format!(
            "the database file {shown} now holds another database (epoch {}, not {}); \
             restart dials to serve it",
            facts.epoch, epoch
        )),
        Ok(_) => None,
    }
}

/// Looks at the database and sets the mode: read-only when it cannot be read, back to normal
/// (reopening it when the file was replaced, and reloading the caches) when it is healthy again.
pub async fn check(state: &AppState) {
    let Ok(path) = crate::backup::database_path(&state.settings.database_url) else {
        return;
    };
    let epoch = state.epoch;
    let problem = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || probe_file(&path, epoch))
            .await
            .unwrap_or_else(|e| Some(format!("the database check failed: {e}")))
    };
    let modal = &state.modal;
    let changed = match (problem, modal.read_only()) {
        (Some(problem), _) => modal.set_reason(Some(problem)),
        (None, None) => match modal.opened() {
            // The file is fine, but the open store may be on a file deleted or replaced under it.
            Some(store) => match store.ping().await {
                Ok(()) => false,
                Err(e) => modal.set_reason(Some(e.to_string())),
            },
            None => false,
        },
        (None, Some(_)) => match reopen(state, &path).await {
            Ok(()) => modal.set_reason(None),
            Err(e) => modal.set_reason(Some(format!("{e:#}"))),
        },
    };
    if changed && let Some(publisher) = &state.publisher {
        publisher.health_changed();
        publisher.wake();
    }
}

/// Makes the database healthy again the store in use: the one already open when it answers
/// (its file only lost its permissions for a while), else a new one over the file.
async fn reopen(state: &AppState, path: &std::path::Path) -> anyhow::Result<()> {
    let modal = &state.modal;
    if let Some(store) = modal.opened()
        && store.ping().await.is_ok()
    {
        return Ok(());
    }
    let (data_dir, url) = (
        state.settings.data_dir.clone(),
        state.settings.database_url.clone(),
    );
    tokio::task::spawn_blocking(move || crate::backup::before_migrating(&data_dir, &url)).await??;
    let url = &state.settings.database_url;
    let store = dials_store::open(url)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    if store.epoch() != state.epoch {
        store.close().await;
        anyhow::bail!(
            "the database file {} now holds another database (epoch {}); restart dials to serve it",
            path.display(),
            store.epoch()
        );
    }
    let old = modal
        .live
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(store);
    if let Some(old) = old {
        old.close().await;
    }
    // What the reopened file holds may differ from what was cached.
    state.configs.clear();
    state.tokens.clear();
    state.schemas.clear();
    tracing::info!(path = %path.display(), "reopened the database");
    Ok(())
}

/// Checks the database every [`CHECK_EVERY`].
pub async fn watch_forever(state: AppState) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        check(&state).await;
    }
}

/// Refuses every mutating request with 503 while read-only, naming the cause. Requests
/// without credentials pass on to be answered 401 as usual; a dry-run validation is a read.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mutating = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !mutating || !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let Some(reason) = state.modal.read_only() else {
        let response = next.run(request).await;
        // Tokens and schemas change without a config commit: the snapshot follows them too.
        if response.status().is_success() {
            state.snapshot_due.notify_one();
        }
        return response;
    };
    let headers = request.headers();
    let credentials = headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers.contains_key(axum::http::header::COOKIE);
    if !credentials || request.uri().path().ends_with("/validate") {
        return next.run(request).await;
    }
    ApiError::ReadOnly(reason).into_response()
}
