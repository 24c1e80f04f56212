//! Running one CLI process: a new process group, bounded output capture, timeout and
//! cancellation that end the whole group.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::agent::CallContext;
use crate::error::{AdapterError, Result};

/// How much of standard error is kept (its end).
pub const STDERR_TAIL: usize = 64 * 1024;
/// The most standard output read; a CLI printing more is misbehaving.
const MAX_STDOUT: usize = 64 * 1024 * 1024;
/// How long the pipes may stay open after the process exited (a leftover grandchild holding
/// them) before the group is ended.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// What a finished process left.
#[derive(Debug, Clone)]
pub struct ProcessOutput {
    /// The exit code, when it exited (rather than died of a signal).
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Everything it printed on standard output.
    pub stdout: Vec<u8>,
    /// The last [`STDERR_TAIL`] bytes of its standard error.
    pub stderr: String,
    /// Whether standard error was longer than what is kept.
    pub stderr_truncated: bool,
}

impl ProcessOutput {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub(super) struct Spec<'a> {
    pub agent: &'a str,
    pub program: &'a Path,
    pub argv: &'a [String],
    pub workdir: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub stdin: Option<&'a str>,
    pub stream_stdout: bool,
    pub deadline: Instant,
    pub timeout: Duration,
    pub grace: Duration,
}

/// Ends the process group when dropped, unless disarmed: a call future dropped mid-way
/// leaves no process behind.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        if let Some(p) = self.pgid {
            // ESRCH (the group is gone) is what we want anyway.
            let _ = killpg(p, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// The tail of a byte stream, at most `cap` bytes.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }
}

/// Decodes UTF-8 across chunk boundaries, for streaming plain-text stdout.
#[derive(Debug, Default)]
struct Utf8Chunks {
    pending: Vec<u8>,
}

impl Utf8Chunks {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_string();
                self.pending.clear();
                out
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: keep it for the next chunk.
                let n = e.valid_up_to();
                let out = String::from_utf8_lossy(&self.pending[..n]).into_owned();
                self.pending.drain(..n);
                out
            }
            Err(_) => {
                let out = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                out
            }
        }
    }
}

async fn read_stdout(
    mut r: impl AsyncRead + Unpin,
    ctx: Option<CallContext>,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut utf8 = Utf8Chunks::default();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((out, false));
        }
        if out.len() + n > MAX_STDOUT {
            return Ok((out, true));
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(ctx) = &ctx {
            ctx.chunk(&utf8.push(&buf[..n]));
        }
    }
}

async fn read_tail(mut r: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
        tail.lock().unwrap_or_else(|e| e.into_inner()).push(&buf[..n]);
    }
}

/// SIGTERM the group, give it `grace` to exit, then SIGKILL it; reap the child.
async fn end_group(guard: &GroupGuard, child: &mut Child, grace: Duration) {
    guard.signal(Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::debug!("process group ignored SIGTERM; sending SIGKILL");
    }
    guard.signal(Signal::SIGKILL);
    let _ = child.wait().await;
}

/// Run the process to its end, or until the deadline or cancellation ends its group.
pub(super) async fn run(spec: Spec<'_>, ctx: &CallContext) -> Result<ProcessOutput> {
    let agent = spec.agent;
    if ctx.cancel.is_cancelled() {
        return Err(AdapterError::cancelled(agent));
    }
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.argv)
        .current_dir(spec.workdir)
        .envs(spec.env)
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    tracing::debug!(program = %spec.program.display(), args = spec.argv.len(), "starting CLI agent");
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AdapterError::NotInstalled {
            agent: agent.to_string(),
            command: spec.program.display().to_string(),
            hint: format!(
                "the program or the working directory {} does not exist",
                spec.workdir.display()
            ),
        },
        std::io::ErrorKind::PermissionDenied => AdapterError::Config {
            agent: agent.to_string(),
            message: format!("{} is not executable: {e}", spec.program.display()),
        },
        _ => {
            AdapterError::transient(agent, format!("cannot start {}: {e}", spec.program.display()))
        }
    })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
    let mut guard = GroupGuard { pgid };

    if let (Some(text), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
        let text = text.to_string();
        tokio::spawn(async move {
            // A CLI that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let stderr = Arc::new(Mutex::new(Tail { cap: STDERR_TAIL, ..Default::default() }));
    let mut err_task = child.stderr.take().map(|r| tokio::spawn(read_tail(r, stderr.clone())));
    let mut out_task = child
        .stdout
        .take()
        .map(|r| tokio::spawn(read_stdout(r, spec.stream_stdout.then(|| ctx.clone()))));

    let status = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => {
            end_group(&guard, &mut child, spec.grace).await;
            return Err(AdapterError::cancelled(agent));
        }
        _ = tokio::time::sleep_until(spec.deadline) => {
            end_group(&guard, &mut child, spec.grace).await;
            return Err(AdapterError::Timeout {
                agent: agent.to_string(),
                endpoint: format!("`{}`", spec.program.display()),
                after: spec.timeout,
                phase: "total",
            });
        }
        s = child.wait() => s.map_err(|e| AdapterError::transient(agent, format!("waiting for the process failed: {e}")))?,
    };

    // The process exited; its pipes close unless something it started still holds them.
    let pipes_deadline = Instant::now() + PIPE_GRACE;
    let mut leftovers = false;
    let stdout = match out_task.as_mut() {
        Some(t) => match tokio::time::timeout_at(pipes_deadline, &mut *t).await {
            Ok(Ok(Ok((bytes, too_big)))) => {
                if too_big {
                    return Err(AdapterError::bad_response(
                        agent,
                        format!("the program printed more than {} MiB", MAX_STDOUT >> 20),
                    ));
                }
                bytes
            }
            Ok(_) => Vec::new(),
            Err(_) => {
                tracing::debug!("a leftover process holds the CLI's output open; ending its group");
                guard.signal(Signal::SIGKILL);
                leftovers = true;
                t.abort();
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    if let Some(t) = err_task.as_mut()
        && tokio::time::timeout_at(pipes_deadline, &mut *t).await.is_err()
    {
        guard.signal(Signal::SIGKILL);
        leftovers = true;
        t.abort();
    }
    if !leftovers {
        // The child is reaped and nothing holds its pipes: nothing to end, and its group id
        // may be reused by an unrelated process from now on.
        guard.pgid = None;
    }
    let tail = std::mem::take(&mut *stderr.lock().unwrap_or_else(|e| e.into_inner()));
    use std::os::unix::process::ExitStatusExt;
    Ok(ProcessOutput {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr: String::from_utf8_lossy(&tail.buf).into_owned(),
        stderr_truncated: tail.truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_decoded_across_chunks() {
        let mut d = Utf8Chunks::default();
        let bytes = "héllo".as_bytes();
        assert_eq!(d.push(&bytes[..2]), "h");
        assert_eq!(d.push(&bytes[2..]), "éllo");
    }

    #[test]
    fn the_tail_keeps_the_end() {
        let mut t = Tail { cap: 4, ..Default::default() };
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.buf, b"defg");
        assert!(t.truncated);
    }
}
