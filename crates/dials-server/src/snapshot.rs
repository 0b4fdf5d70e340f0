//! The manager's own signed snapshot of every service's current state, kept in the data
//! directory so that reads (and token checks) can go on when the database cannot be read.
//!
//! `<data-dir>/dials.snapshot` is one header line, `dials-snapshot 1 hmac-sha256 <hex>`, then
//! the JSON body the MAC covers byte for byte: epoch, revision, schema version, and per service
//! its version, revision and document (secret values are placeholders, as the database holds
//! them), the registered schemas, and the tokens as the database holds them (SHA-256 hashes,
//! never a token). The MAC key is derived from the root of the last-known-good keys with a label
//! of its own, so the snapshot needs no key file of its own and a copied snapshot does not
//! verify under another data directory's keys.
//!
//! The file is replaced atomically by a background task after commits (a burst of writes is
//! one file) and at start; never from a database that cannot be read, so a good snapshot is
//! not overwritten by a degraded view.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use dials_domain::{Document, Epoch, Revision, ServiceName, Version};
use dials_store::{SchemaRecord, ServiceState, Store, TokenRecord};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The snapshot's file name in the data directory.
pub const FILE_NAME: &str = "dials.snapshot";

const HEADER: &str = "dials-snapshot 1 hmac-sha256 ";

/// How long a burst of commits is gathered before the snapshot is written once for all.
const COALESCE: Duration = Duration::from_millis(250);

/// How often the snapshot is compared with the database even without a commit (schemas and
/// tokens change without a config commit).
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Where the snapshot of a data directory lives.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The MAC key: HMAC-SHA256 of the last-known-good root over a label no service's LKG key
/// uses (`dials-lkg-v1/<service>`).
pub fn key_from(lkg_root: &dials_vault::MasterKey) -> Zeroizing<[u8; 32]> {
    lkg_root.derive("dials-snapshot-v1")
}

/// Every service's current state, as of one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format of this body.
    pub format: u32,
    /// The epoch of the database it was taken from.
    pub epoch: uuid::Uuid,
    /// The latest revision it holds.
    pub revision: u64,
    /// The database schema version it was taken from.
    pub schema_version: i64,
    /// When it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// Every service, deleted ones included (their `config` is null).
    pub services: Vec<SnapService>,
    /// Every registered schema.
    pub schemas: Vec<SnapSchema>,
    /// Every token, by hash.
    pub tokens: Vec<SnapToken>,
}

/// One service in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapService {
    /// Its name.
    pub service: String,
    /// Its current version.
    pub version: u64,
    /// The revision of its latest change.
    pub revision: u64,
    /// Its document with secret placeholders; null once deleted.
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who last changed it.
    pub updated_by: String,
}

/// One registered schema in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapSchema {
    /// The service.
    pub service: String,
    /// The JSON Schema.
    pub schema: serde_json::Value,
    /// Its hash.
    pub hash: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who registered it.
    pub updated_by: String,
}

/// One token in a [`Snapshot`]: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapToken {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The service a `service` token is scoped to.
    pub service: Option<String>,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl Snapshot {
    /// Reads the current state of everything from a store.
    pub async fn take(store: &dyn Store) -> anyhow::Result<Self> {
        let services = store.services().await?;
        let schemas = store.schemas().await?;
        let tokens = store.tokens().await?;
        Ok(Self {
            format: 1,
            epoch: store.epoch().0,
            revision: store.latest_revision().await?,
            schema_version: store.schema_version().await?,
            taken_at: OffsetDateTime::now_utc(),
            services: services
                .into_iter()
                .map(|s| SnapService {
                    service: s.name.to_string(),
                    version: s.version.0,
                    revision: s.revision.0,
                    config: s.document.map(|d| d.as_map().clone()),
                    updated_at: s.updated_at,
                    updated_by: s.updated_by,
                })
                .collect(),
            schemas: schemas
                .into_iter()
                .map(|s| SnapSchema {
                    service: s.service.to_string(),
                    schema: s.schema,
                    hash: s.hash,
                    updated_at: s.updated_at,
                    updated_by: s.updated_by,
                })
                .collect(),
            tokens: tokens
                .into_iter()
                .map(|t| SnapToken {
                    id: t.id,
                    name: t.name,
                    role: t.role,
                    service: t.service,
                    hash: hex::encode(t.hash),
                    created_at: t.created_at,
                    created_by: t.created_by,
                    expires_at: t.expires_at,
                    revoked_at: t.revoked_at,
                })
                .collect(),
        })
    }

    /// The epoch it was taken under.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch)
    }

    /// Whether two snapshots hold the same state (the time taken aside).
    pub fn same_state(&self, other: &Self) -> bool {
        Self {
            taken_at: other.taken_at,
            ..self.clone()
        } == *other
    }

    /// The signed file's bytes.
    pub fn to_signed(&self, key: &[u8; 32]) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        let mut out = format!("{HEADER}{}\n", hex::encode(mac_of(key, &body))).into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Parses a signed file, refusing one whose MAC does not verify under `key`.
    pub fn from_signed(bytes: &[u8], key: &[u8; 32]) -> anyhow::Result<Self> {
        let Some(newline) = bytes.iter().position(|b| *b == b'\n') else {
            bail!("not a dials snapshot (no header line)");
        };
        let (header, body) = (&bytes[..newline], &bytes[newline + 1..]);
        let header = std::str::from_utf8(header).context("not a dials snapshot")?;
        let Some(mac_hex) = header.strip_prefix(HEADER) else {
            bail!("not a dials snapshot of format 1");
        };
        let claimed = hex::decode(mac_hex.trim()).context("the snapshot's MAC is not hex")?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(body);
        if mac.verify_slice(&claimed).is_err() {
            bail!(
                "the snapshot's signature does not verify: it was changed after dials wrote it, \
                 or it belongs to another data directory's keys"
            );
        }
        let snapshot: Self = serde_json::from_slice(body).context("the snapshot is malformed")?;
        if snapshot.format != 1 {
            bail!("unknown snapshot format {}", snapshot.format);
        }
        Ok(snapshot)
    }

    /// Reads and verifies the snapshot of a data directory: `Ok(None)` when there is none, an
    /// error when there is one that does not verify.
    pub fn load(data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<Option<Self>> {
        let path = path_in(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Self::from_signed(&bytes, key)
            .with_context(|| format!("refusing the snapshot {}", path.display()))
            .map(Some)
    }

    /// Replaces the data directory's snapshot atomically (temporary file, fsync, rename).
    pub fn save(&self, data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
        crate::data_dir::replace_file_bytes(&path_in(data_dir), &self.to_signed(key))
    }

    /// The services as the store shows them.
    pub fn service_states(&self) -> Vec<ServiceState> {
        self.services
            .iter()
            .filter_map(|s| {
                Some(ServiceState {
                    name: ServiceName::parse(&s.service).ok()?,
                    version: Version(s.version),
                    revision: Revision(s.revision),
                    document: s.config.clone().map(Document::from_map),
                    updated_at: s.updated_at,
                    updated_by: s.updated_by.clone(),
                })
            })
            .collect()
    }

    /// The schemas as the store shows them.
    pub fn schema_records(&self) -> Vec<SchemaRecord> {
        self.schemas
            .iter()
            .filter_map(|s| {
                Some(SchemaRecord {
                    service: ServiceName::parse(&s.service).ok()?,
                    schema: s.schema.clone(),
                    hash: s.hash.clone(),
                    updated_at: s.updated_at,
                    updated_by: s.updated_by.clone(),
                })
            })
            .collect()
    }

    /// The tokens as the store shows them (never used since: the snapshot does not track use).
    pub fn token_records(&self) -> Vec<TokenRecord> {
        self.tokens
            .iter()
            .filter_map(|t| {
                Some(TokenRecord {
                    id: t.id,
                    name: t.name.clone(),
                    role: t.role.clone(),
                    service: t.service.clone(),
                    hash: hex::decode(&t.hash).ok()?.try_into().ok()?,
                    created_at: t.created_at,
                    created_by: t.created_by.clone(),
                    expires_at: t.expires_at,
                    last_used_at: None,
                    revoked_at: t.revoked_at,
                })
            })
            .collect()
    }
}

fn mac_of(key: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Takes a snapshot from the store and writes it when the state changed since the snapshot in
/// force. Never from a database that cannot be read: the snapshot in force stays.
pub async fn refresh(state: &crate::AppState) -> anyhow::Result<()> {
    if state.modal.read_only().is_some() {
        return Ok(());
    }
    let taken = Snapshot::take(state.store.as_ref()).await?;
    if state
        .modal
        .snapshot()
        .is_some_and(|held| held.same_state(&taken))
    {
        return Ok(());
    }
    let taken = Arc::new(taken);
    let key = key_from(&state.keys.lkg_root);
    let (dir, file) = (state.settings.data_dir.clone(), taken.clone());
    tokio::task::spawn_blocking(move || file.save(&dir, &key)).await??;
    state.modal.set_snapshot(taken);
    Ok(())
}

/// Keeps the snapshot up to date: once at start, then after commits (gathered for a moment so
/// a burst of writes is one file), and every [`REFRESH_EVERY`] for schema and token changes.
/// The server writes it once more as it stops.
pub async fn keep_forever(state: crate::AppState) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = state.snapshot_due.notified() => {
                tokio::time::sleep(COALESCE).await;
            }
        }
        if let Err(e) = refresh(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the snapshot");
        }
    }
}

/// What [`rebuild`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rebuilt {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why, as the operator said it.
    pub reason: String,
    /// The new database's epoch.
    pub epoch: uuid::Uuid,
    /// The epoch of the snapshot it was rebuilt from.
    pub snapshot_epoch: uuid::Uuid,
    /// The snapshot's revision.
    pub snapshot_revision: u64,
    /// When the snapshot was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub snapshot_taken_at: OffsetDateTime,
    /// Services written into the new database.
    pub services: usize,
    /// Secrets whose values were in the old database only (`service/key`): set them again.
    pub secrets_lost: Vec<String>,
    /// Where the old database was moved (with its `-wal` and `-shm` beside it), if there was one.
    pub broken_database: Option<PathBuf>,
    /// The tombstone file describing all this.
    pub tombstone: PathBuf,
}

/// Makes a new database from the snapshot, with a new epoch: the old database file (and its
/// WAL) is moved aside as `dials.db.broken-<time>`, every service's current document, every
/// schema and every token (by hash, so tokens keep working) are written in one transaction, an
/// audit entry says so, and a tombstone file `rebuilt-<time>.json` in the data directory says
/// when, from which snapshot and why. Secret values are not in the snapshot: their keys are
/// left out of the documents and listed, to be set again. Offline: the caller holds the
/// data-directory lock.
pub async fn rebuild(
    settings: &crate::ServerSettings,
    keys: &crate::keys::ServerKeys,
    reason: &str,
) -> anyhow::Result<Rebuilt> {
    let data_dir = &settings.data_dir;
    let key = key_from(&keys.lkg_root);
    let Some(snapshot) = Snapshot::load(data_dir, &key)? else {
        bail!(
            "there is no snapshot in {} to rebuild from; restore a backup instead",
            data_dir.display()
        );
    };
    let db = crate::backup::database_path(&settings.database_url)?;
    let now = OffsetDateTime::now_utc();
    let stamp = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
        .replace(':', "");
    let mut aside = None;
    for suffix in ["", "-wal", "-shm"] {
        let mut from = db.clone().into_os_string();
        from.push(suffix);
        let from = PathBuf::from(from);
        if from.exists() {
            let mut to = db.clone().into_os_string();
            to.push(format!(".broken-{stamp}{suffix}"));
            let to = PathBuf::from(to);
            std::fs::rename(&from, &to).with_context(|| {
                format!("cannot move {} aside to {}", from.display(), to.display())
            })?;
            if suffix.is_empty() {
                aside = Some(to);
            }
        }
    }
    let store = dials_store::open(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", settings.database_url))?;
    let written = async {
        let written = write_into(store.as_ref(), &snapshot, reason, now).await?;
        // The snapshot from now on is the new database's, under its new epoch.
        Snapshot::take(store.as_ref()).await?.save(data_dir, &key)?;
        anyhow::Ok(written)
    }
    .await;
    let epoch = store.epoch();
    store.close().await;
    let (services, secrets_lost) = written?;
    let tombstone = data_dir.join(format!("rebuilt-{stamp}.json"));
    let rebuilt = Rebuilt {
        at: now,
        reason: reason.to_owned(),
        epoch: epoch.0,
        snapshot_epoch: snapshot.epoch,
        snapshot_revision: snapshot.revision,
        snapshot_taken_at: snapshot.taken_at,
        services,
        secrets_lost,
        broken_database: aside,
        tombstone: tombstone.clone(),
    };
    crate::data_dir::replace_file(&tombstone, &serde_json::to_string_pretty(&rebuilt)?)?;
    Ok(rebuilt)
}

async fn write_into(
    store: &dyn Store,
    snapshot: &Snapshot,
    reason: &str,
    at: OffsetDateTime,
) -> anyhow::Result<(usize, Vec<String>)> {
    let mut lost = Vec::new();
    let mut changes = Vec::new();
    for state in snapshot.service_states() {
        let Some(mut document) = state.document else {
            continue;
        };
        for (key, _) in dials_domain::secret::secret_refs(&document) {
            document.remove(&key);
            lost.push(format!("{}{}", state.name, key.as_str()));
        }
        changes.push(dials_store::NewChange {
            changes: dials_domain::diff(&Document::new(), &document),
            service: state.name,
            base_version: Version(0),
            kind: dials_domain::ChangeKind::Restore,
            document: Some(document),
            actor: "dials rebuild".into(),
            reason: Some(format!(
                "rebuilt from the snapshot of revision {}: {reason}",
                snapshot.revision
            )),
            at,
            origin: None,
            secrets: Vec::new(),
        });
    }
    let services = changes.len();
    store
        .import(dials_store::ImportBatch {
            schemas: snapshot.schema_records(),
            changes,
            profiles: Vec::new(),
        })
        .await
        .context("cannot write the rebuilt database")?;
    for token in snapshot.token_records() {
        store
            .insert_token(&token)
            .await
            .context("cannot write a token into the rebuilt database")?;
    }
    store
        .insert_audit(&dials_store::AuditRecord {
            id: 0,
            at,
            actor: "dials rebuild".into(),
            action: "database.rebuild".into(),
            target: Some(format!(
                "from the snapshot of epoch {} revision {}",
                snapshot.epoch, snapshot.revision
            )),
            address: None,
            outcome: "ok".into(),
            reason: Some(reason.to_owned()),
        })
        .await?;
    Ok((services, lost))
}
