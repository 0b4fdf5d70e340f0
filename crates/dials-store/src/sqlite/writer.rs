//! The one writer: a thread that owns SQLite's write connection and commits jobs in groups.
//!
//! Every write of the SQLite backend is a job sent to this thread. It runs SQL synchronously on
//! its own connection (rusqlite: no hand-off to a worker thread per statement), and the jobs that
//! queue while one transaction is being made durable are committed together in the next one,
//! with one fsync (group commit). Each job runs in a savepoint of its own, so a job that fails
//! (a lost compare-and-swap) undoes only itself; each is answered only once the transaction that
//! holds it is on disk (`synchronous=FULL`), or with the reason it is not.
//!
//! A failed transaction (a full disk, an I/O error, a vanished file) fails every job in it, and
//! the connection is replaced before the next one: a fresh connection is the one state known to
//! be clean. Rare writes that need the connection to themselves, with borrowed callbacks (a
//! schema registration that rewrites history, a key rotation), borrow it through
//! [`Writer::exclusive`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Most jobs committed in one transaction: enough to absorb any burst the HTTP layer admits,
/// few enough that the first job's wait stays short.
const MAX_GROUP: usize = 256;

/// How long a write waits for a lock held by another process before it is "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks before each transaction that the database file is still the one opened.
pub(super) type FileCheck = Box<dyn Fn() -> Result<()> + Send>;

/// The handle the store keeps: sends jobs, closes the thread.
#[derive(Debug)]
pub(super) struct Writer {
    queue: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

/// What the writer has done since it started.
#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    jobs: AtomicU64,
}

/// How the writer grouped its work: jobs per transaction is what group commit saves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (one fsync each).
    pub transactions: u64,
    /// Jobs committed in them.
    pub jobs: u64,
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
    /// Whether its failure leaves the connection suspect (anything but a refusal by rule).
    fn poisoned(&self) -> bool;
    /// Answers the caller: with its own result once `commit` succeeded, else with why not.
    fn finish(self: Box<Self>, commit: std::result::Result<(), String>);
}

struct Task<T, F> {
    work: Option<F>,
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
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let counting = counters.clone();
        let thread = std::thread::Builder::new()
            .name("dials-writer".into())
            .spawn(move || run(conn, &path, &check, &jobs, &counting))
            .map_err(|e| unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            counters,
        })
    }

    /// Transactions and jobs committed so far.
    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
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
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Job(Box::new(Task {
            work: Some(work),
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
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The writer thread: takes a group of jobs, commits it, answers, until the queue closes.
fn run(
    conn: Connection,
    path: &Path,
    check: &FileCheck,
    jobs: &mpsc::Receiver<Msg>,
    counters: &Counters,
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
        if outcome.is_ok() {
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

/// One transaction for the whole group, a savepoint per job, one COMMIT (one fsync).
fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| reason(&e))?;
    for job in group.iter_mut() {
        let step = (|| -> rusqlite::Result<()> {
            conn.execute_batch("SAVEPOINT job")?;
            if job.run(conn) {
                conn.execute_batch("RELEASE job")
            } else if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk, an I/O error): the
                // jobs before this one are gone too.
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the transaction was rolled back by a failed write".into()),
                ))
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(reason(&e));
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(reason(&e));
    }
    Ok(())
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
