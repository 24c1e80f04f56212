//! The one thread that writes run records: async code hands it writes and awaits the
//! acknowledgement, so no flush (an fsync) ever runs on an async executor.
//!
//! The thread takes every write that is waiting when it wakes up (up to `MAX_BATCH`) and
//! applies them as one batch with one flush, then acknowledges each: a caller's write is
//! on disk when its `await` returns — a step is stored before the next step starts — while
//! many concurrent runs share each fsync. After a second without writes it lets the backend
//! checkpoint (a journaled store flushes its database then; see [`crate::store::Journaled`]).

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;

use crate::backend::{Backend, Write};
use crate::error::{Error, Result};

/// The writer thread's name (a test checks that writes happen on it).
pub const WRITER_THREAD: &str = "troupe-store-writer";
/// Most writes grouped under one flush.
const MAX_BATCH: usize = 512;
/// How long the thread waits without writes before it lets the backend checkpoint
/// ([`Backend::checkpoint`]: a journaled store flushes its database and empties its journal).
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

struct Job {
    writes: Vec<Write>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// A handle on the writer thread; cheap to clone. The thread ends when the last handle is
/// dropped. It holds the backend weakly, so dropping the store's owners closes the backend
/// (and releases the data folder's lock) at once.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Start the thread writing into `backend`.
    pub(crate) fn start(backend: &Arc<dyn Backend>) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let weak = Arc::downgrade(backend);
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || run(&weak, &rx))
            .map_err(|e| Error::Invalid(format!("cannot start the run-record writer: {e}")))?;
        Ok(Writer { tx })
    }

    /// Write `writes` (in order, atomically) and wait until they are on disk.
    pub(crate) async fn write(&self, writes: Vec<Write>) -> Result<()> {
        self.send(writes)?.wait().await
    }

    /// Hand `writes` to the thread without waiting: they are written after everything
    /// handed over before and before everything handed over after. Wait on the result
    /// before relying on them being on disk.
    pub(crate) fn send(&self, writes: Vec<Write>) -> Result<Pending> {
        let (done, ack) = oneshot::channel();
        self.tx.send(Job { writes, done }).map_err(|_| stopped())?;
        Ok(Pending(ack))
    }
}

/// Writes handed to the writer; [`Pending::wait`] returns once they are on disk.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<std::result::Result<(), String>>);

impl Pending {
    /// Wait until the writes are on disk (or failed).
    pub async fn wait(self) -> Result<()> {
        self.0.await.map_err(|_| stopped())?.map_err(Error::Write)
    }
}

/// Run `f` on a thread of its own (named like the writer) and wait for it: for the rare
/// synchronous writes made at start-up, which may be called from inside an executor.
pub(crate) fn off_executor<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn_scoped(scope, f)
            .map_err(|e| Error::Invalid(format!("cannot start the run-record writer: {e}")))?
            .join()
            .map_err(|_| Error::Join("the run-record index build panicked".into()))?
    })
}

fn stopped() -> Error {
    Error::Write("the run-record writer stopped".into())
}

fn run(backend: &Weak<dyn Backend>, rx: &mpsc::Receiver<Job>) {
    // Whether anything was written since the last checkpoint.
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(IDLE) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if std::mem::take(&mut dirty)
                    && let Some(b) = backend.upgrade()
                    && let Err(e) = b.checkpoint()
                {
                    tracing::warn!(error = %e, "the run records could not be checkpointed");
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        dirty = true;
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let Some(b) = backend.upgrade() else {
            for job in jobs {
                let _ = job.done.send(Err("the run store is closed".to_string()));
            }
            continue;
        };
        let writes: Vec<Write> = jobs.iter_mut().flat_map(|j| j.writes.drain(..)).collect();
        let result = b.write(&writes).map_err(|e| e.to_string());
        for job in jobs {
            let _ = job.done.send(result.clone());
        }
        // What the write left for after the acknowledgement (the journal's writes into the
        // database): the callers go on meanwhile.
        if let Err(e) = b.settle() {
            tracing::warn!(error = %e, "acknowledged run records could not be applied to the database yet; they stay in the journal and are tried again");
        }
    }
}
