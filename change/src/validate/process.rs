//! Running one validator command: its own process group, a timeout, cancellation, a bounded
//! tail of its output.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{CommandResult, Options, Outcome, failing_tests};

/// How long to wait for the output pipes to close once the command's group is gone (a
/// process that left the group may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The last bytes written by a command, bounded.
#[derive(Debug)]
struct Tail {
    bytes: Vec<u8>,
    keep: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > self.keep * 2 {
            let cut = self.bytes.len() - self.keep;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self, max_chars: usize) -> String {
        let start = self.bytes.len().saturating_sub(self.keep);
        let text = String::from_utf8_lossy(&self.bytes[start..]);
        let text = super::tail_chars(&text, max_chars);
        text.trim().to_string()
    }
}

async fn pump(mut reader: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut tail) = tail.lock() {
                    tail.push(&buf[..n]);
                }
            }
        }
    }
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // The group may be gone already (ESRCH): nothing left to kill.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Runs one command (see the module documentation of [`super`]).
pub(super) async fn run_one(
    dir: &Path,
    command: &str,
    opts: &Options,
    cancel: &CancellationToken,
) -> CommandResult {
    let started = Instant::now();
    let result = |outcome: Outcome, output: String| {
        let failing = failing_tests(&output);
        CommandResult {
            command: command.to_string(),
            outcome,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            output,
            failing,
        }
    };
    let argv = match shlex::split(command) {
        Some(argv) if !argv.is_empty() => argv,
        Some(_) => {
            return result(
                Outcome::NotFound {
                    message: "the command is empty; remove it from validate.commands".into(),
                },
                String::new(),
            );
        }
        None => {
            return result(
                Outcome::NotFound {
                    message: format!(
                        "`{command}` has an unclosed quote or a trailing backslash; fix it in \
                         validate.commands"
                    ),
                },
                String::new(),
            );
        }
    };
    if argv[0] == super::expect::COMMAND {
        let (dir, names) = (dir.to_path_buf(), argv[1..].to_vec());
        let checked = tokio::task::spawn_blocking(move || super::expect::check(&dir, &names)).await;
        let (outcome, output) = checked.unwrap_or_else(|e| {
            (Outcome::NotFound { message: format!("the check stopped: {e}") }, String::new())
        });
        return result(outcome, output);
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("CI", "1")
        .env("NO_COLOR", "1")
        .env("CARGO_TERM_COLOR", "never")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let message = if e.kind() == std::io::ErrorKind::NotFound {
                if dir.is_dir() {
                    format!(
                        "`{}` was not found on PATH; install it or change validate.commands",
                        argv[0]
                    )
                } else {
                    format!("the folder {} does not exist", dir.display())
                }
            } else {
                format!("`{}` could not start: {e}", argv[0])
            };
            return result(Outcome::NotFound { message }, String::new());
        }
    };
    let pid = child.id();
    let keep = opts.max_output_chars.max(1).saturating_mul(4);
    let tail = Arc::new(Mutex::new(Tail { bytes: Vec::new(), keep }));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, tail.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, tail.clone())));
    }
    let outcome = tokio::select! {
        status = child.wait() => match status {
            Ok(status) if status.success() => Outcome::Passed,
            Ok(status) => Outcome::Failed { code: status.code() },
            Err(_) => Outcome::Failed { code: None },
        },
        () = tokio::time::sleep(opts.timeout) => Outcome::TimedOut,
        () = cancel.cancelled() => Outcome::Cancelled,
    };
    // Whatever happened, nothing the command started outlives it.
    kill_group(pid);
    let _ = child.wait().await;
    for pump in pumps {
        let _ = tokio::time::timeout(DRAIN_GRACE, pump).await;
    }
    let output = tail.lock().map(|t| t.text(opts.max_output_chars)).unwrap_or_default();
    result(outcome, output)
}
