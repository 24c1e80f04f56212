//! The one module that runs the `git` command line.
//!
//! Every call is an argument vector (never a shell), with a fixed environment so the output
//! is the same on every machine: `LC_ALL=C`, no pager, no terminal prompt, no optional locks
//! (so reading commands never rewrite the user's index), unquoted paths, hooks and signing
//! off, and an identity (`troupe <troupe@localhost>`) so commits work where git has no user
//! configured. `GIT_DIR`, `GIT_WORK_TREE` and `GIT_INDEX_FILE` inherited from the caller are
//! dropped; [`Git::env`] sets them explicitly where a call needs them.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// `git` run in one folder with a fixed environment.
#[derive(Debug, Clone)]
pub struct Git {
    /// The folder git runs in (`-C`).
    dir: PathBuf,
    /// Extra environment, e.g. `GIT_INDEX_FILE` for a snapshot built beside the user's index.
    env: Vec<(OsString, OsString)>,
    /// Whether to pass troupe's identity; off for commits on the user's own branch when the
    /// user has an identity configured.
    identity: bool,
}

impl Git {
    /// git in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Git {
        Git { dir: dir.into(), env: Vec::new(), identity: true }
    }

    /// The same, with one more environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Git {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The same, committing as the user when the user has configured an identity (and as
    /// troupe otherwise).
    pub fn as_user(mut self) -> Git {
        self.identity = false;
        let configured = self.output(["config", "--get", "user.email"], None).is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty()
        });
        self.identity = !configured;
        self
    }

    /// The folder git runs in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs git and returns its standard output; a non-zero exit is [`Error::Git`].
    pub fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_input(args, None)
    }

    /// Runs git with `input` on its standard input.
    pub fn run_input<I, S>(&self, args: I, input: Option<&[u8]>) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run_bytes(args, input)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Runs git and returns its standard output as bytes (a patch of a file that is not
    /// UTF-8 must survive exactly).
    pub fn run_bytes<I, S>(&self, args: I, input: Option<&[u8]>) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.output(&args, input)?;
        if out.status.success() { Ok(out.stdout) } else { Err(self.failure(&args, &out)) }
    }

    /// Runs git and reports whether it exited with status 0 (a failure to start is an error).
    pub fn succeeds<I, S>(&self, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Ok(self.output(args, None)?.status.success())
    }

    /// Runs git and returns its raw output whatever its exit status.
    pub fn output<I, S>(&self, args: I, input: Option<&[u8]>) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        for (key, value) in [
            ("core.quotepath", "off"),
            ("core.hooksPath", "/dev/null"),
            ("core.fsmonitor", "false"),
            ("commit.gpgsign", "false"),
            ("color.ui", "false"),
        ] {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        if self.identity {
            cmd.args(["-c", "user.name=troupe", "-c", "user.email=troupe@localhost"]);
        }
        cmd.args(args);
        for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"] {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("PAGER", "cat")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::GitMissing,
            _ => Error::Io { what: "starting git".into(), source },
        })?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // git may exit before reading everything (e.g. a usage error); its exit status
            // and stderr then say why, so a broken pipe here is not the error to report.
            let _ = stdin.write_all(bytes);
        }
        child.wait_with_output().map_err(|source| Error::Io { what: "running git".into(), source })
    }

    /// The error for a failed call: the command line, git's stderr, and what to do.
    pub fn failure(&self, args: &[OsString], out: &Output) -> Error {
        let command = std::iter::once("git".to_string())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ");
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let hint = hint(&stderr, &self.dir);
        Error::Git { command, stderr, hint }
    }
}

/// What to do about a git failure, from its message.
fn hint(stderr: &str, dir: &Path) -> String {
    let dir = dir.display();
    if stderr.contains("index.lock") {
        format!(
            "another git process is working in {dir}; wait for it to finish (or remove the \
             stale .git/index.lock if none is running) and try again"
        )
    } else if stderr.contains("not a git repository") {
        format!("{dir} is not (or no longer) a git repository; check the folder")
    } else if stderr.contains("already exists") {
        "a folder or branch of that name already exists; remove it or use another name".into()
    } else if stderr.contains("dubious ownership") {
        format!("git refuses {dir} because another user owns it; run git as that user")
    } else {
        format!("run the command yourself in {dir} to see more")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_git_says_to_install_it() {
        let err = Git::new(".").env("PATH", "/nonexistent").run(["version"]).unwrap_err();
        assert!(matches!(err, Error::GitMissing), "{err}");
        assert!(err.to_string().contains("Install git"), "{err}");
    }

    #[test]
    fn a_failed_command_carries_the_command_line_git_stderr_and_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = Git::new(dir.path()).run(["rev-parse", "--verify", "no-such-ref"]).unwrap_err();
        let Error::Git { command, stderr, hint } = &err else { panic!("{err}") };
        assert_eq!(command, "git rev-parse --verify no-such-ref");
        assert!(stderr.contains("not a git repository"), "{stderr}");
        assert!(hint.contains("is not (or no longer) a git repository"), "{hint}");
        assert!(err.to_string().starts_with("`git rev-parse --verify no-such-ref` failed: "));
    }

    #[test]
    fn as_user_commits_as_the_user_when_configured_and_as_troupe_otherwise() {
        let home = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // No global or system configuration: only what the repository says.
        let git = Git::new(dir.path())
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1");
        git.run(["init", "-q"]).unwrap();
        let author = |git: &Git| git.run(["log", "-1", "--format=%an <%ae>"]).unwrap();
        git.clone().as_user().run(["commit", "-q", "--allow-empty", "-m", "a"]).unwrap();
        assert_eq!(author(&git), "troupe <troupe@localhost>\n");
        git.run(["config", "user.name", "Ada"]).unwrap();
        git.run(["config", "user.email", "ada@example.org"]).unwrap();
        git.clone().as_user().run(["commit", "-q", "--allow-empty", "-m", "b"]).unwrap();
        assert_eq!(author(&git), "Ada <ada@example.org>\n");
    }

    #[test]
    fn the_user_configuration_does_not_leak_into_output() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        git.run(["init", "-q"]).unwrap();
        std::fs::write(dir.path().join("ü.txt"), "x").unwrap();
        git.run(["add", "-A"]).unwrap();
        // core.quotepath=off: a non-ASCII name comes back as it is, not as "\303\274.txt".
        assert_eq!(git.run(["diff", "--cached", "--name-only"]).unwrap(), "ü.txt\n");
        // The troupe identity lets a commit succeed without any user configuration.
        git.run(["commit", "-q", "-m", "x"]).unwrap();
        assert_eq!(git.run(["log", "--format=%an <%ae>"]).unwrap(), "troupe <troupe@localhost>\n");
    }
}
