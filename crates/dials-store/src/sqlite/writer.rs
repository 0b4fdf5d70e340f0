//! The one writer: a thread that owns SQLite's write connection and commits jobs in groups.
//!
//! Every write of the SQLite backend is a job sent to this thread. It runs SQL synchronously on
//! its own connection (rusqlite: no hand-off to a worker thread per statement), and the jobs that
//! queue while one transaction is being made durable are committed together in the next one,
//! with one fsync (group commit). A job that fails by rule (a lost compare-and-swap) undoes only
//! itself, and each is answered only once the transaction that holds it is on disk
//! (`synchronous=FULL`), or with the reason it is not.
//!
//! A job undoes itself one of two ways. Most jobs run in a savepoint of their own, which costs
//! SQLite a copy of every page the job touches (the savepoint's journal) and three statements.
//! A job that *checks first* — one that refuses before it writes anything, as a single commit's
//! compare-and-swap does — runs bare: when it refuses, there is nothing to undo. The writer
//! counts the rows every bare job changed, so a bare job that fails after writing after all (a
//! broken database) rolls the whole group back rather than leaving half of itself behind.
//!
//! A failed transaction (a full disk, an I/O error, a vanished file) fails every job in it, and
//! the connection is replaced before the next one: a fresh connection is the one state known to
//! be clean. Rare writes that need the connection to themselves, with borrowed callbacks (a
//! schema registration that rewrites history, a key rotation), borrow it through
//! [`Writer::exclusive`].
//!
//! Checkpoints (copying the log back into the database file, and fsyncing that file) run on a
//! thread of their own with a connection of its own, so no commit waits behind the bulk of one:
//! the writer notes the log's length after each commit and pokes the checkpointer once it passes
//! [`CHECKPOINT_BYTES`]. SQLite lets a checkpoint run beside the commits that keep appending to
//! the log, but starts the log over only at a commit that finds all of it copied; so once the
//! checkpointer has copied all but the last few frames, the writer copies those itself between
//! two groups. Should the checkpointer fall behind, the writer waits for the run under way and
//! copies everything itself at twice that length: the log stays bounded however little CPU the
//! other thread gets, and commits pause only while it is a whole threshold behind.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Most jobs committed in one transaction: enough to absorb any burst the HTTP layer admits,
/// few enough that the first job's wait stays short.
const MAX_GROUP: usize = 256;

/// How long a write waits for a lock held by another process before it is "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The log's length past which the checkpointer is asked to copy it into the database file:
/// about what SQLite's default of 1,000 pages of 4 KiB gives.
const CHECKPOINT_BYTES: i64 = 4 << 20;

/// The log's own header, and each frame's, in front of the page it holds (SQLite's WAL format).
const LOG_HEADER_BYTES: i64 = 32;
const FRAME_HEADER_BYTES: i64 = 24;

/// How much of the log, at most, the writer copies itself once the checkpointer has copied the
/// rest, so that SQLite can start the log over.
const CHECKPOINT_TAIL_BYTES: i64 = 256 << 10;

/// How many times [`CHECKPOINT_BYTES`] the log may grow before the writer checkpoints it itself,
/// waiting for a checkpoint under way to finish first.
const INLINE_CHECKPOINT_FACTOR: i64 = 2;

thread_local! {
    /// Frames in the log after the last commit made on this thread (SQLite's WAL hook).
    static LOG_FRAMES: Cell<i64> = const { Cell::new(0) };
}

/// Checks before each transaction that the database file is still the one opened.
pub(super) type FileCheck = Box<dyn Fn() -> Result<()> + Send>;

/// The handle the store keeps: sends jobs, closes the thread.
#[derive(Debug)]
pub(super) struct Writer {
    queue: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// What the writer has done since it started.
#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    jobs: AtomicU64,
    checkpoints: AtomicU64,
}

/// How the writer grouped its work: jobs per transaction is what group commit saves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (one fsync each).
    pub transactions: u64,
    /// Jobs committed in them.
    pub jobs: u64,
    /// Checkpoints run by the checkpointer thread, off the commits' way.
    pub checkpoints: u64,
}

enum Msg {
    /// A job to commit with the others that arrive with it.
    Job(Box<dyn Job>),
    /// A request for the connection itself, outside any group.
    Lease(oneshot::Sender<Lease>),
}

/// One write, run inside the group's transaction.
trait Job: Send {
    /// Runs the job's statements; `false` when it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the job refuses before it writes, so it needs no savepoint.
    fn checks_first(&self) -> bool;
    /// Whether its failure leaves the connection suspect (anything but a refusal by rule).
    fn poisoned(&self) -> bool;
    /// Answers the caller: with its own result once `commit` succeeded, else with why not.
    fn finish(self: Box<Self>, commit: std::result::Result<(), String>);
}

struct Task<T, F> {
    work: Option<F>,
    checks_first: bool,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn checks_first(&self) -> bool {
        self.checks_first
    }

    fn poisoned(&self) -> bool {
        matches!(&self.result, Some(Err(e)) if !refusal(e))
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), String>) {
        let answer = match (self.result, commit) {
            // Its own failure stands whatever became of the others.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(reason)) => Err(unavailable(reason)),
            (None, Ok(())) => Err(unavailable("the write was not run".into())),
        };
        // The caller may have gone away (a closed connection); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// A failure that is the job's answer by rule, not a sign of a broken connection.
fn refusal(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { .. } | StoreError::Aborted(_))
}

fn unavailable(reason: String) -> StoreError {
    StoreError::Unavailable {
        reason,
        source: None,
    }
}

/// The write connection lent to one caller; it goes back to the writer when dropped.
pub(super) struct Lease {
    conn: Option<Connection>,
    poisoned: bool,
    back: mpsc::Sender<Returned>,
}

/// A lent connection coming back, and whether the borrower's write failed with it.
type Returned = (Connection, bool);

impl Lease {
    pub(super) fn conn(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// Marks the connection as suspect: the writer replaces it.
    pub(super) fn poison(&mut self) {
        self.poisoned = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.back.send((conn, self.poisoned));
        }
    }
}

impl Writer {
    /// Opens the write connection and starts its thread.
    pub(super) fn start(path: &Path, check: FileCheck) -> Result<Self> {
        let path = path.to_path_buf();
        let conn = open(&path)?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        // Held by whoever checkpoints, and by a lease for as long as it is out: a lease that
        // truncates the log (a redaction) must not meet a checkpoint already under way.
        let checkpointing = Arc::new(Mutex::new(()));
        let copied = Arc::new(AtomicI64::new(0));
        let (poke, pokes) = mpsc::sync_channel(1);
        let checkpointer = {
            let (path, counters, checkpointing, copied) = (
                path.clone(),
                counters.clone(),
                checkpointing.clone(),
                copied.clone(),
            );
            std::thread::Builder::new()
                .name("dials-checkpoint".into())
                .spawn(move || {
                    checkpoint_on_demand(&path, &pokes, &checkpointing, &copied, &counters);
                })
                .map_err(|e| unavailable(format!("cannot start the checkpoint thread: {e}")))?
        };
        let log = Log {
            frame_bytes: page_size.max(512) + FRAME_HEADER_BYTES,
            poke,
            checkpointing,
            copied,
        };
        let counting = counters.clone();
        let thread = std::thread::Builder::new()
            .name("dials-writer".into())
            .spawn(move || run(conn, &path, &check, &jobs, &counting, &log))
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            counters,
        })
    }

    /// Transactions and jobs committed so far.
    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            checkpoints: self.counters.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` inside the next group's transaction and answers once that is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        Self::answer(self.queue(work)?).await
    }

    /// Sends `work` to the writer now, behind every job sent before it; [`Writer::answer`]
    /// waits for its outcome.
    pub(super) fn queue<T, F>(&self, work: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.send_task(work, false)
    }

    /// As [`Writer::queue`], for `work` that checks first: it answers a refusal
    /// ([`StoreError::Conflict`], [`StoreError::Aborted`]) only before its first write, so it runs
    /// without a savepoint of its own.
    pub(super) fn queue_checked<T, F>(&self, work: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.send_task(work, true)
    }

    fn send_task<T, F>(&self, work: F, checks_first: bool) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Job(Box::new(Task {
            work: Some(work),
            checks_first,
            result: None,
            reply,
        })))?;
        Ok(answer)
    }

    /// The outcome of a job [`Writer::queue`] sent.
    pub(super) async fn answer<T>(answer: oneshot::Receiver<Result<T>>) -> Result<T> {
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Lends the write connection to the caller alone, between two groups. The caller runs its
    /// own transaction on it synchronously and drops the lease.
    pub(super) async fn exclusive(&self) -> Result<Lease> {
        let (reply, lease) = oneshot::channel();
        self.send(Msg::Lease(reply))?;
        lease.await.map_err(|_| closed())
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_ref() {
            Some(queue) => queue.send(msg).map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    /// Lets the jobs already sent finish, then closes the connection. Later writes fail as
    /// unavailable.
    pub(super) fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        // The writer thread held the only way to poke the checkpointer: it ends now.
        let checkpointer = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(checkpointer) = checkpointer {
            let _ = checkpointer.join();
        }
    }
}

fn closed() -> StoreError {
    unavailable("the database is closed".into())
}

/// Opens a write connection with the durability and safety settings every write relies on.
pub(super) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL was set when the database was created and is persistent; FULL makes every commit
    // durable before it is acknowledged. Deleted and overwritten content is zeroed wherever that
    // costs no extra I/O (a redaction turns it fully on).
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // No checkpoint on commit: the hook only notes the log's length, and the writer decides.
    conn.wal_hook(Some(note_log_length));
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// SQLite's WAL hook: called after every commit with the frames now in the log.
fn note_log_length(_: &Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_FRAMES.with(|f| f.set(i64::from(frames)));
    Ok(())
}

/// What the writer needs to keep the log short.
struct Log {
    /// What one frame takes in the log: a page and its header.
    frame_bytes: i64,
    poke: mpsc::SyncSender<()>,
    checkpointing: Arc<Mutex<()>>,
    /// How far into the log the checkpointer's last run copied, in frames.
    copied: Arc<AtomicI64>,
}

impl Log {
    /// After a commit: asks the checkpointer to copy the log once it is long, and copies the
    /// last few frames itself once the checkpointer has done the rest. SQLite starts the log
    /// over only at a commit that finds all of it copied, which a checkpoint on another thread
    /// seldom leaves behind while commits keep coming. At twice the length (the checkpointer
    /// short of CPU, or stuck) it waits for a run under way and copies everything itself.
    fn after_commit(&self, conn: &Connection) {
        let frames = LOG_FRAMES.with(Cell::get);
        let mut copied = self.copied.load(Ordering::Relaxed);
        if frames < copied {
            // The log started over: what was copied of the last one counts for nothing.
            self.copied.store(0, Ordering::Relaxed);
            copied = 0;
        }
        let bytes = LOG_HEADER_BYTES + frames * self.frame_bytes;
        if bytes < CHECKPOINT_BYTES {
            return;
        }
        let behind = frames - copied;
        let held = if bytes >= CHECKPOINT_BYTES * INLINE_CHECKPOINT_FACTOR {
            // Back-pressure: the next group waits for this copy rather than let the log grow.
            Some(self.checkpointing.lock().unwrap_or_else(|e| e.into_inner()))
        } else if behind * self.frame_bytes <= CHECKPOINT_TAIL_BYTES {
            self.checkpointing.try_lock().ok()
        } else {
            None
        };
        if let Some(_held) = held {
            if let Ok(copied) = checkpoint(conn) {
                self.copied.store(copied, Ordering::Relaxed);
            }
            return;
        }
        // A poke already waiting is as good as this one.
        let _ = self.poke.try_send(());
    }
}

/// Copies what the log holds into the database file, without waiting on anyone: frames a
/// reader still needs stay for the next time. Answers how many of the log's frames are copied.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(2))
}

/// The checkpointer thread: a checkpoint each time the writer asks, on a connection of its own,
/// until the writer thread ends.
fn checkpoint_on_demand(
    path: &Path,
    pokes: &mpsc::Receiver<()>,
    checkpointing: &Mutex<()>,
    copied: &AtomicI64,
    counters: &Counters,
) {
    let mut conn: Option<Connection> = None;
    while pokes.recv().is_ok() {
        let _held = checkpointing.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            conn = match open_checkpointer(path) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a connection to checkpoint the log");
                    continue;
                }
            };
        }
        let Some(c) = conn.as_ref() else { continue };
        match checkpoint(c) {
            Ok(done) => {
                copied.store(done, Ordering::Relaxed);
                counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the log failed; trying again later");
                conn = None;
            }
        }
    }
}

/// The checkpointer's connection: it writes only the database file, and fsyncs it.
fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // It never commits, but a hook of its own keeps SQLite from checkpointing on its behalf.
    conn.wal_hook(Some(note_log_length));
    Ok(conn)
}

/// The writer thread: takes a group of jobs, commits it, answers, until the queue closes.
fn run(
    conn: Connection,
    path: &Path,
    check: &FileCheck,
    jobs: &mpsc::Receiver<Msg>,
    counters: &Counters,
    log: &Log,
) {
    let mut conn = Some(conn);
    let mut next: Option<Msg> = None;
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match jobs.recv() {
                Ok(msg) => msg,
                Err(_) => break,
            },
        };
        let first = match msg {
            Msg::Job(job) => job,
            Msg::Lease(reply) => {
                let _held = log.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
                lend(&mut conn, path, reply);
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(Msg::Job(job)) => group.push(job),
                Ok(lease) => {
                    next = Some(lease);
                    break;
                }
                Err(_) => break,
            }
        }
        let outcome = match (check(), ensure(&mut conn, path)) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e.to_string()),
            (Ok(()), Ok(c)) => commit_group(c, &mut group),
        };
        let committed = outcome.is_ok();
        if committed {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters
                .jobs
                .fetch_add(group.len() as u64, Ordering::Relaxed);
        }
        let poisoned = outcome.is_err() || group.iter().any(|job| job.poisoned());
        if poisoned {
            // Replaced before the next use: SQLite may have ended the transaction on its own
            // (a full disk), and only a fresh connection is known to agree with the file.
            conn = None;
        }
        for job in group {
            job.finish(outcome.clone());
        }
        // Once the answers are out, so that a checkpoint the writer must run itself delays none.
        if let (true, Some(c)) = (committed, conn.as_ref()) {
            log.after_commit(c);
        }
    }
    // Closing checkpoints the log into the database file.
    drop(conn);
}

/// The connection, opened again if a failure dropped it.
fn ensure<'c>(conn: &'c mut Option<Connection>, path: &Path) -> Result<&'c Connection> {
    if conn.is_none() {
        *conn = Some(open(path)?);
    }
    Ok(conn.as_ref().expect("just opened"))
}

/// Lends the connection and waits for it to come back.
fn lend(conn: &mut Option<Connection>, path: &Path, reply: oneshot::Sender<Lease>) {
    let c = match conn.take() {
        Some(c) => c,
        None => match open(path) {
            Ok(c) => c,
            // The caller sees the lease fail as a closed writer; its next try opens again.
            Err(_) => return,
        },
    };
    let (back, returned) = mpsc::channel();
    let lease = Lease {
        conn: Some(c),
        poisoned: false,
        back,
    };
    // The caller runs its transaction and drops the lease, which sends the connection back; a
    // caller that went away before taking it dropped it here, which sent it back already.
    if let Err(lease) = reply.send(lease) {
        drop(lease);
    }
    *conn = match returned.recv() {
        // A failed write, or a transaction left open, and the next group starts afresh.
        Ok((c, poisoned)) if !poisoned && c.is_autocommit() => Some(c),
        _ => None,
    };
}

/// One transaction for the whole group, a savepoint per job that needs one, one COMMIT (one
/// fsync).
fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    statement(conn, "BEGIN IMMEDIATE").map_err(|e| reason(&e))?;
    for job in group.iter_mut() {
        let step = if job.checks_first() {
            run_bare(conn, job.as_mut())
        } else {
            run_in_savepoint(conn, job.as_mut())
        };
        if let Err(e) = step {
            let _ = statement(conn, "ROLLBACK");
            return Err(reason(&e));
        }
    }
    if let Err(e) = statement(conn, "COMMIT") {
        let _ = statement(conn, "ROLLBACK");
        return Err(reason(&e));
    }
    Ok(())
}

/// Runs a job that checks first. Its refusal leaves nothing to undo; a failure after it changed
/// rows fails the group.
fn run_bare(conn: &Connection, job: &mut dyn Job) -> rusqlite::Result<()> {
    let before = conn.total_changes();
    if job.run(conn) {
        Ok(())
    } else if conn.is_autocommit() {
        Err(rolled_back())
    } else if conn.total_changes() == before {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("a write failed half done; its group was rolled back".into()),
        ))
    }
}

/// Runs a job in a savepoint of its own, undone alone when the job fails.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Job) -> rusqlite::Result<()> {
    statement(conn, "SAVEPOINT job")?;
    if job.run(conn) {
        statement(conn, "RELEASE job")
    } else if conn.is_autocommit() {
        Err(rolled_back())
    } else {
        statement(conn, "ROLLBACK TO job")?;
        statement(conn, "RELEASE job")
    }
}

/// SQLite rolled the whole transaction back (a full disk, an I/O error): the jobs before the
/// failed one are gone too.
fn rolled_back() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("the transaction was rolled back by a failed write".into()),
    )
}

/// Runs one transaction-control statement, prepared once per connection.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Why a transaction failed, in the words [`StoreError::Unavailable`] carries.
fn reason(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            match StoreError::from(rusqlite::Error::SqliteFailure(*code, message.clone())) {
                StoreError::Unavailable { reason, .. } => reason,
                other => other.to_string(),
            }
        }
        other => format!("database error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &tempfile::TempDir) -> Writer {
        let path = dir.path().join("w.db");
        let writer = Writer::start(&path, Box::new(|| Ok(()))).unwrap();
        let mut lease = writer_lease(&writer);
        lease
            .conn()
            .execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        writer
    }

    fn writer_lease(writer: &Writer) -> Lease {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(writer.exclusive())
            .unwrap()
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    fn rows(writer: &Writer) -> Vec<i64> {
        let mut lease = writer_lease(writer);
        let conn = lease.conn();
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The answers of jobs already sent.
    fn answers(jobs: Vec<oneshot::Receiver<Result<()>>>) -> Vec<Result<()>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        jobs.into_iter()
            .map(|a| rt.block_on(Writer::answer(a)))
            .collect()
    }

    /// Holds the writer between two groups while `send` queues jobs, so they commit together.
    fn held<T>(writer: &Writer, send: impl FnOnce() -> T) -> T {
        let lease = writer_lease(writer);
        let sent = send();
        drop(lease);
        sent
    }

    #[test]
    fn a_refusal_that_checks_first_undoes_nothing_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let jobs = held(&w, || {
            vec![
                w.queue_checked(insert(1)).unwrap(),
                w.queue_checked(|_| {
                    Err(StoreError::Conflict {
                        current: dials_domain::Version(7),
                    })
                })
                .unwrap(),
                w.queue_checked(insert(2)).unwrap(),
            ]
        });
        let got = answers(jobs);
        assert!(got[0].is_ok() && got[2].is_ok());
        assert!(matches!(got[1], Err(StoreError::Conflict { .. })));
        assert_eq!(rows(&w), [1, 2]);
        assert_eq!(w.stats().transactions, 1, "one group, one transaction");
    }

    #[test]
    fn a_job_that_checks_first_and_fails_half_done_rolls_its_group_back() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let jobs = held(&w, || {
            vec![
                w.queue_checked(insert(1)).unwrap(),
                w.queue_checked(|conn| {
                    insert(2)(conn)?;
                    Err(StoreError::Conflict {
                        current: dials_domain::Version(7),
                    })
                })
                .unwrap(),
            ]
        });
        let got = answers(jobs);
        assert!(
            matches!(&got[0], Err(e) if e.is_unavailable()),
            "the other job is answered 'try again', not acknowledged: {:?}",
            got[0]
        );
        assert!(rows(&w).is_empty(), "nothing of the group landed");
        // The writer goes on with the next group.
        let next = answers(vec![w.queue_checked(insert(3)).unwrap()]);
        assert!(next[0].is_ok());
        assert_eq!(rows(&w), [3]);
    }

    #[test]
    fn a_job_in_a_savepoint_that_fails_half_done_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let jobs = held(&w, || {
            vec![
                w.queue(insert(1)).unwrap(),
                w.queue(|conn| {
                    insert(2)(conn)?;
                    Err(StoreError::Aborted("the caller's step failed".into()))
                })
                .unwrap(),
                w.queue_checked(insert(3)).unwrap(),
            ]
        });
        let got = answers(jobs);
        assert!(got[0].is_ok() && got[2].is_ok());
        assert!(matches!(got[1], Err(StoreError::Aborted(_))));
        assert_eq!(rows(&w), [1, 3]);
    }
}
