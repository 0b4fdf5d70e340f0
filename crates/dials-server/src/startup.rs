//! The startup seam: open the store, do first-start work, bind, serve, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use dials_mqtt::{BrokerChoice, Publisher, PublisherConfig, Topics};
use dials_store::{Store, TokenRecord};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::data_dir::{DataDirLock, create_private_dir, write_private_file};
use crate::readonly::ModalStore as ReadOnly;
use crate::{AppState, ServerSettings, hash_token, new_token_secret, router};

/// A built, bound application, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    address: SocketAddr,
    state: AppState,
    admin_token: Option<PathBuf>,
    /// Held while the server runs, so no offline command rewrites keys or secrets under it.
    lock: DataDirLock,
}

impl Application {
    /// Opens the store (creating data dir and database on first start), writes the first admin
    /// token when the database is new, and binds the HTTP listener.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        // Before anything records, so nothing recorded is lost.
        crate::metrics::recorder();
        create_private_dir(&settings.data_dir)?;
        let lock = DataDirLock::acquire(&settings.data_dir)?;
        // Looked at before the keys are loaded: loading creates missing keys, which would make
        // a fresh data directory look like one with an earlier life.
        let lost = if settings.init {
            None
        } else {
            refuse_a_lost_database(&settings.data_dir, &settings.database_url).err()
        };
        let keys = crate::keys::ServerKeys::load(&settings.data_dir, &settings.key_overrides)?;
        let snapshot_key = crate::snapshot::key_from(&keys.lkg_root);
        let snapshot = match crate::snapshot::Snapshot::load(&settings.data_dir, &snapshot_key) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                // Loudly, and never used: it is replaced by a fresh one from the database.
                tracing::error!(error = %format!("{e:#}"), "the snapshot was refused");
                eprintln!("dials: {e:#}");
                None
            }
        };
        let opened = match lost {
            Some(lost) => Err(lost),
            None => open_database(&settings).await,
        };
        let (modal, admin_token) = match opened {
            Ok(store) => {
                let admin_token = if store.created() {
                    Some(create_admin_token(store.as_ref(), &settings.data_dir).await?)
                } else {
                    None
                };
                crate::keys::finish_rotation(
                    &settings.data_dir,
                    &keys.master,
                    settings.key_overrides.master.is_none(),
                    store.as_ref(),
                )
                .await?;
                (ReadOnly::normal(store, snapshot), admin_token)
            }
            Err(e) => (
                read_only_or_refuse(e, snapshot, &settings.database_url)?,
                None,
            ),
        };
        let modal = Arc::new(modal);
        let store: Arc<dyn Store> = modal.clone();
        let signer = keys.signer.clone();
        let tls = match &settings.tls {
            Some(files) => {
                // The ring provider keeps the build free of C toolchains; installing twice is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                        .await
                        .with_context(|| {
                            format!(
                                "cannot load the TLS certificate {} and key {}",
                                files.cert.display(),
                                files.key.display()
                            )
                        })?,
                )
            }
            None => None,
        };
        let listener = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.http_addr))?;
        let address = listener.local_addr()?;
        let replica = crate::cluster::Replica::join(store.clone());
        let (publisher, broker) = start_mqtt(
            &settings,
            &store,
            &signer,
            &keys.rotations,
            replica.leading(),
        )
        .await?;
        tracing::info!(
            %address, backend = store.backend(), epoch = %store.epoch(),
            data_dir = %settings.data_dir.display(), "dials is ready"
        );
        let home_assistant = settings.home_assistant;
        let state = AppState::with_modal(modal, settings, keys, publisher, replica);
        match (home_assistant, broker) {
            (true, Some(broker)) => {
                crate::homeassistant::spawn(state.clone(), broker);
            }
            (true, None) => {
                tracing::warn!("Home Assistant discovery needs MQTT; it is off (--mqtt none)");
            }
            (false, _) => {}
        }
        Ok(Self {
            listener,
            tls,
            address,
            state,
            admin_token,
            lock,
        })
    }

    /// The address the listener is bound to (the real port when port 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL clients use: `http://HOST:PORT`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// The admin token file written by this start, if it was the first.
    pub fn admin_token_path(&self) -> Option<&Path> {
        self.admin_token.as_deref()
    }

    /// The shared state, for tests that look behind the API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish. Also prunes the
    /// access log hourly, keeping `audit_retention`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let _lock = self.lock;
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let app = router(self.state.clone());
        let pruner = tokio::spawn(prune_forever(self.state.clone()));
        let upkeep = tokio::spawn(crate::metrics::upkeep_forever());
        let denials = tokio::spawn(flush_denials_forever(self.state.clone()));
        let backups = scheduled_backups(&self.state.settings)?.map(tokio::spawn);
        let snapshots = tokio::spawn(crate::snapshot::keep_forever(self.state.clone()));
        let mode = tokio::spawn(crate::readonly::watch_forever(self.state.clone()));
        let follower = tokio::spawn(crate::cluster::follow_forever(self.state.clone()));
        let tls = self.tls.map(|config| config.get_inner());
        crate::serve::serve(self.listener, tls, app, shutdown)
            .await
            .context("HTTP server failed")?;
        pruner.abort();
        upkeep.abort();
        denials.abort();
        snapshots.abort();
        mode.abort();
        follower.abort();
        // The last commits' snapshot, if the gathering pause had not ended yet.
        if let Err(e) = crate::snapshot::refresh(&self.state).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the snapshot");
        }
        if let Some(backups) = backups {
            backups.abort();
        }
        // Whatever was still being counted is logged before the store closes.
        write_denials(
            &self.state,
            std::time::Instant::now() + crate::denials::WINDOW,
        )
        .await;
        // Say goodbye on MQTT (health ok:false) and disconnect cleanly; what was not
        // acknowledged stays in the outbox for the next start.
        if let Some(publisher) = &self.state.publisher {
            publisher.shutdown().await;
        }
        // Another replica publishes from now on, without waiting for the lease to expire.
        self.state.replica.leave().await;
        self.state.store.close().await;
        tracing::info!("dials stopped");
        Ok(())
    }
}

/// The access log's size bound: entries beyond the newest this many go at the hourly prune
/// (about 30 MB of rows), whatever their age.
pub const AUDIT_MAX_ROWS: u64 = 100_000;

/// The backup schedule of `--backup-every`, when there is one.
fn scheduled_backups(
    settings: &ServerSettings,
) -> anyhow::Result<Option<impl Future<Output = ()> + Send + 'static>> {
    let Some(every) = settings.backup_every else {
        return Ok(None);
    };
    let db = crate::backup::database_path(&settings.database_url)?;
    let dir = crate::backup::default_dir(&settings.data_dir);
    tracing::info!(every = ?every, keep = settings.backup_keep, dir = %dir.display(), "scheduled backups");
    Ok(Some(crate::backup::backup_forever(
        db,
        dir,
        every,
        settings.backup_keep,
    )))
}

/// Writes the summaries of aggregated denials as their windows end.
async fn flush_denials_forever(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        every.tick().await;
        write_denials(&state, std::time::Instant::now()).await;
    }
}

async fn write_denials(state: &AppState, now: std::time::Instant) {
    for record in state.denials.due(now) {
        if let Err(e) = state.store.insert_audit(&record).await {
            tracing::warn!(error = %e, "cannot write denied requests to the audit log");
        }
    }
}

/// Deletes access-log entries older than the retention or beyond [`AUDIT_MAX_ROWS`], and
/// expired sessions, every hour.
async fn prune_forever(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let keep = time::Duration::try_from(state.settings.audit_retention)
            .unwrap_or(time::Duration::days(90));
        match state
            .store
            .prune(OffsetDateTime::now_utc() - keep, AUDIT_MAX_ROWS)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "pruned the audit log"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
        }
    }
}

/// Resolves the broker setting, starts the in-process broker if that is the choice, and spawns
/// the publisher. The log says which broker is in use.
async fn start_mqtt(
    settings: &ServerSettings,
    store: &Arc<dyn Store>,
    signer: &Arc<dials_wire::EnvelopeSigner>,
    rotations: &[dials_wire::rotation::RotationStatement],
    leading: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(
    Option<dials_mqtt::PublisherHandle>,
    Option<crate::homeassistant::HaBroker>,
)> {
    let choice = dials_mqtt::resolve(&settings.mqtt).await;
    match &choice {
        BrokerChoice::Disabled => {
            tracing::info!("MQTT is off (--mqtt none): changes are served over HTTP only");
            return Ok((None, None));
        }
        BrokerChoice::Embedded(addr) => {
            dials_mqtt::embedded::start(*addr).await?;
            tracing::info!(%addr, "MQTT: running the in-process broker");
            if store.shared() {
                tracing::warn!(
                    "the database may be shared with other replicas, but the broker is this \
                     process's own: services that listen to another replica's broker miss \
                     changes; give every replica the same external broker (--mqtt mqtt://…)"
                );
            }
        }
        BrokerChoice::External(broker) => {
            tracing::info!(broker = %broker.display_url(), "MQTT: using an external broker");
        }
    }
    let ca_pem = match &settings.mqtt_ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the MQTT CA file {}", path.display()))?,
        ),
        None => None,
    };
    let broker = choice
        .broker_url()
        .map(|url| crate::homeassistant::HaBroker {
            url,
            ca_pem: ca_pem.clone(),
        });
    let config = PublisherConfig {
        ca_pem,
        choice,
        client_id: format!("dials-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        topics: Topics::new(settings.mqtt_prefix.clone()),
        epoch: store.epoch().0,
        // The rotation chain, so a service that pinned an earlier key follows the rotations.
        retained_extras: if rotations.is_empty() {
            Vec::new()
        } else {
            let topics = Topics::new(settings.mqtt_prefix.clone());
            let chain = dials_wire::rotation::RotationChain::new(rotations.to_vec());
            vec![(topics.keys(), chain.to_bytes())]
        },
    };
    Ok((
        Some(Publisher::spawn(
            config,
            store.clone(),
            signer.clone(),
            leading,
        )),
        broker,
    ))
}

/// Refuses to start when the SQLite file is missing (or empty) from a data directory that shows
/// an earlier life: starting anyway would create an empty database with a new epoch and a new
/// admin token, silently orphaning every service and token of the old one.
fn refuse_a_lost_database(data_dir: &Path, database_url: &str) -> anyhow::Result<()> {
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return Ok(());
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return Ok(());
    }
    let db = Path::new(path);
    let missing = match std::fs::metadata(db) {
        Ok(meta) => meta.len() == 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
    };
    if !missing {
        return Ok(());
    }
    let keys = data_dir.join("keys");
    let earlier: Vec<String> = [
        data_dir.join("admin.token"),
        keys.join("signing.key"),
        keys.join("master.key"),
    ]
    .iter()
    .filter(|p| p.exists())
    .map(|p| p.display().to_string())
    .collect();
    if earlier.is_empty() {
        return Ok(());
    }
    bail!(
        "the database {} is missing or empty, but {} belong to an earlier database; \
         put the database file back (or restore a backup), or start with --init to create a \
         new empty one with a new epoch",
        db.display(),
        earlier.join(" and ")
    )
}

/// Backs up a database about to be migrated, then opens it.
async fn open_database(settings: &ServerSettings) -> anyhow::Result<Arc<dyn Store>> {
    let (data_dir, url) = (settings.data_dir.clone(), settings.database_url.clone());
    tokio::task::spawn_blocking(move || crate::backup::before_migrating(&data_dir, &url)).await??;
    open_store(&settings.database_url).await
}

/// A database that cannot be opened: read-only from the snapshot when there is one, else the
/// error. A database a newer dials wrote is refused either way (serving it from an older
/// snapshot would hide that). The read-only mode watches a SQLite file to know when the
/// database is back: on PostgreSQL the error stands, and saying so.
fn read_only_or_refuse(
    error: anyhow::Error,
    snapshot: Option<crate::snapshot::Snapshot>,
    database_url: &str,
) -> anyhow::Result<ReadOnly> {
    if dials_store::is_postgres(database_url) {
        return Err(error.context(
            "dials serves read-only from its snapshot only on SQLite; on PostgreSQL it starts \
             once the database answers",
        ));
    }
    let newer = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<dials_store::StoreError>(),
            Some(dials_store::StoreError::NewerSchema { .. })
        )
    });
    match snapshot {
        Some(snapshot) if !newer => {
            let reason = format!("{error:#}").replace('\n', " ");
            eprintln!(
                "dials: READ-ONLY: {reason}; serving the snapshot of revision {} taken at {} \
                 (writes are refused until the database is back; `dials rebuild` makes a new \
                 one from the snapshot)",
                snapshot.revision,
                snapshot
                    .taken_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            );
            tracing::error!(
                reason,
                revision = snapshot.revision,
                "starting read-only from the snapshot"
            );
            Ok(ReadOnly::read_only_from(snapshot, reason))
        }
        _ => Err(error),
    }
}

/// Opens the database a URL names; an error says which and why, on one line.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    dials_store::open(url)
        .await
        .with_context(|| format!("cannot open the database {}", dials_store::redact_url(url)))
}

/// First start: one admin token, written to `<data-dir>/admin.token` (0600), announced once.
async fn create_admin_token(store: &dyn Store, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let secret = new_token_secret();
    store
        .insert_token(&TokenRecord {
            id: uuid::Uuid::new_v4(),
            name: "admin".into(),
            role: "admin".into(),
            service: None,
            hash: hash_token(&secret),
            created_at: OffsetDateTime::now_utc(),
            created_by: "dials".into(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        })
        .await?;
    let path = data_dir.join("admin.token");
    write_private_file(&path, format!("{secret}\n").as_bytes())?;
    eprintln!(
        "dials: created the first admin token in {} (readable only by you)",
        path.display()
    );
    Ok(path)
}
