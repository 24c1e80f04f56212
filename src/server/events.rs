//! A run's events for `GET /api/runs/{id}/events`: every event of a run this server
//! started is kept (so a client connecting late still sees it from the start); a run that
//! is not in that log is rebuilt from its stored record and steps.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;
use futures::Stream;
use tokio::sync::{broadcast, watch};
use troupe_runtime::{Launched, RunEvent, RunRecord, RunState};

/// How many finished runs keep their full event log (older ones are rebuilt from the store,
/// with each step's answer as one chunk).
const FINISHED_LOGS_KEPT: usize = 64;
/// A comment line is sent after this long without events, so proxies and clients do not
/// take a long step (a slow local model) for a dead connection.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The comment line sent when a stream has been quiet for [`KEEP_ALIVE`].
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// Every event of one run, as it happened.
#[derive(Debug)]
pub struct RunLog {
    /// The events so far.
    events: Mutex<Vec<RunEvent>>,
    /// How many events there are; readers wait on it.
    count: watch::Sender<usize>,
    /// Set when the collector stopped (after the final event, or if the run vanished).
    ended: std::sync::atomic::AtomicBool,
}

impl RunLog {
    fn new() -> RunLog {
        RunLog {
            events: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            ended: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn push(&self, event: RunEvent) {
        self.extend([event]);
    }

    fn extend(&self, new: impl IntoIterator<Item = RunEvent>) {
        let n = match self.events.lock() {
            Ok(mut events) => {
                events.extend(new);
                events.len()
            }
            Err(_) => return,
        };
        self.count.send_replace(n);
    }

    fn end(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        self.count.send_modify(|_| {});
    }

    fn has_ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn from(&self, idx: usize) -> Vec<RunEvent> {
        self.events
            .lock()
            .map(|e| e.get(idx..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }
}

/// The event logs of the runs this server started.
#[derive(Debug, Default)]
pub struct RunLogs {
    inner: Mutex<LogsInner>,
}

#[derive(Debug, Default)]
struct LogsInner {
    logs: HashMap<String, Arc<RunLog>>,
    /// Finished runs, oldest first, for eviction.
    finished: VecDeque<String>,
}

impl RunLogs {
    /// Record every event of a run launched in this process until it ends (the runtime's
    /// launch watcher calls this before the run's first event). A resumed run's log starts
    /// with this attempt's `run_started`, then what its earlier attempts did.
    pub fn collect(self: &Arc<Self>, launched: Launched) {
        let log = Arc::new(RunLog::new());
        if let Ok(mut inner) = self.inner.lock() {
            inner.logs.insert(launched.id.clone(), log.clone());
        }
        let logs = self.clone();
        actix_web::rt::spawn(async move {
            let Launched { id, earlier, mut events } = launched;
            let mut earlier = Some(earlier);
            loop {
                match events.recv().await {
                    Ok(e) => {
                        let last = e.is_final();
                        if let Some(before) = earlier.take() {
                            if matches!(e, RunEvent::RunStarted { .. }) {
                                log.push(e);
                                log.extend(before);
                                continue;
                            }
                            log.extend(before);
                        }
                        log.push(e);
                        if last {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(run = %id, missed = n, "the event log fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            log.end();
            logs.finished(&id);
        });
    }

    fn finished(&self, id: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.finished.push_back(id.to_string());
            while inner.finished.len() > FINISHED_LOGS_KEPT {
                if let Some(old) = inner.finished.pop_front() {
                    inner.logs.remove(&old);
                }
            }
        }
    }

    /// The log of a run this server started, if it still has it.
    pub fn get(&self, id: &str) -> Option<Arc<RunLog>> {
        self.inner.lock().ok().and_then(|i| i.logs.get(id).cloned())
    }
}

/// One Server-Sent Event.
pub fn sse_frame(index: usize, event: &RunEvent) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    let name = serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_else(|| "event".into());
    Bytes::from(format!("id: {index}\nevent: {name}\ndata: {data}\n\n"))
}

type Frame = Result<Bytes, actix_web::Error>;

/// The events of a logged run from index `from` (0, or one past a reconnecting client's
/// `Last-Event-ID`): everything so far, then live until the run ends.
pub fn log_stream(log: Arc<RunLog>, from: usize) -> impl Stream<Item = Frame> {
    let rx = log.count.subscribe();
    futures::stream::unfold((log, rx, from, false), |(log, mut rx, idx, done)| async move {
        if done {
            return None;
        }
        loop {
            let batch = log.from(idx);
            if !batch.is_empty() {
                let finished = batch.iter().any(RunEvent::is_final);
                let mut bytes = Vec::new();
                for (i, e) in batch.iter().enumerate() {
                    bytes.extend_from_slice(&sse_frame(idx + i, e));
                }
                let next = idx + batch.len();
                return Some((Ok(Bytes::from(bytes)), (log, rx, next, finished)));
            }
            if log.has_ended() {
                return None;
            }
            match tokio::time::timeout(KEEP_ALIVE, rx.changed()).await {
                Err(_) => return Some((Ok(keep_alive()), (log, rx, idx, false))),
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {}
            }
        }
    })
}

/// The events of a stored run, rebuilt from its record and steps, then (if it is running
/// in this process) its live events.
pub fn stored_stream(
    events: Vec<RunEvent>,
    live: Option<broadcast::Receiver<RunEvent>>,
    from: usize,
) -> impl Stream<Item = Frame> {
    let first = events.len().max(from);
    let replay = futures::stream::iter(
        events
            .into_iter()
            .enumerate()
            .skip(from)
            .map(|(i, e)| Ok(sse_frame(i, &e)))
            .collect::<Vec<_>>(),
    );
    let live = futures::stream::unfold((live, first), |(rx, idx)| async move {
        let mut rx = rx?;
        loop {
            let received = match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
                Ok(r) => r,
                Err(_) => return Some((Ok(keep_alive()), (Some(rx), idx))),
            };
            match received {
                Ok(e) => {
                    let frame = sse_frame(idx, &e);
                    let next = if e.is_final() { None } else { Some(rx) };
                    return Some((Ok(frame), (next, idx + 1)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    futures::StreamExt::chain(replay, live)
}

/// Whether a stored run may still produce events (it is pending or in progress).
pub fn may_continue(record: &RunRecord) -> bool {
    matches!(record.state, RunState::Pending | RunState::InProgress)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use troupe_runtime::Tokens;

    use super::*;

    fn finished(id: &str) -> RunEvent {
        RunEvent::RunFinished {
            run_id: id.into(),
            state: RunState::Completed,
            reason: None,
            iterations: 1,
            tokens: Tokens::default(),
            cost: 0.0,
            error: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_sends_keep_alives_then_events_and_ends_after_the_last() {
        let log = Arc::new(RunLog::new());
        let mut stream = Box::pin(log_stream(log.clone(), 0));
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first, keep_alive());
        log.push(finished("r"));
        let frame = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(frame.starts_with("id: 0\nevent: run_finished\ndata: {"), "{frame}");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn a_late_reader_gets_everything_from_the_start() {
        let log = Arc::new(RunLog::new());
        log.push(RunEvent::Chunk {
            run_id: "r".into(),
            pos: troupe_workflows::engine::StepPos { iteration: 1, step: 0 },
            text: "hi".into(),
        });
        log.push(finished("r"));
        log.end();
        let frames: Vec<_> = log_stream(log.clone(), 0).collect().await;
        let text: String =
            frames.into_iter().map(|f| String::from_utf8(f.unwrap().to_vec()).unwrap()).collect();
        assert!(text.contains("event: chunk") && text.contains("event: run_finished"), "{text}");
        assert!(text.find("chunk") < text.find("run_finished"));
        // A client reconnecting with `Last-Event-ID: 0` gets what came after it.
        let frames: Vec<_> = log_stream(log, 1).collect().await;
        assert_eq!(frames.len(), 1);
        let text = String::from_utf8(frames[0].as_ref().unwrap().to_vec()).unwrap();
        assert!(text.starts_with("id: 1\nevent: run_finished"), "{text}");
    }
}
