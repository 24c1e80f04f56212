//! Helpers shared by the binary's integration tests: agents made of shell scripts, and a real
//! `troupe serve` process to talk to over HTTP.

#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A test's folders: a temporary root holding a data folder (`home`, created), a project
/// folder (created) and the path of the configuration file (`troupe.toml`, which the test
/// writes).
pub struct World {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub project: PathBuf,
    pub config: PathBuf,
}

impl World {
    /// Fresh folders.
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let project = dir.path().join("project");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        let config = dir.path().join("troupe.toml");
        World { dir, home, project, config }
    }

    /// `troupe --config CONFIG ARGS` in the project with `home` as its data folder (and
    /// `home/assets` as its assets), no API token, no `RUST_LOG`, stdin closed (not run yet).
    pub fn troupe(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.project)
            .env("TROUPE_HOME", &self.home)
            .env("TROUPE_ASSETS", self.home.join("assets"))
            .env_remove("TROUPE_API_TOKEN")
            .env_remove("TROUPE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Use the small local test model: the installed assets linked into `home`, and a
    /// configuration whose workflow `local` is one implement step by `local-code` on it,
    /// answers cut at 32 tokens; `settings` are more lines of `[settings]`.
    pub fn use_local_model(&self, settings: &str) {
        std::os::unix::fs::symlink(local_model_assets(), self.home.join("assets")).unwrap();
        let config = [
            format!("[settings]\nmax_output_tokens = 32\n{settings}\n"),
            workflow("local", 1, &[("local-code", "implement")]),
            smol_local_agents(),
        ];
        std::fs::write(&self.config, config.concat()).unwrap();
    }

    /// `name` in the root folder (next to `home` and `project`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Run `troupe ARGS` in `cwd` with `home` as its data folder (and as `$HOME`, so no user
/// configuration is read), no configuration file named, no `RUST_LOG`.
pub fn troupe_in(home: &Path, cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .current_dir(cwd)
        .env("TROUPE_HOME", home)
        .env("TROUPE_ASSETS", home.join("assets"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("TROUPE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A configuration's `[agents.NAME]` table: a generic CLI agent running `script` with the
/// prompt as its argument, followed by the TOML lines `extra` (`env`, `retry`, timeouts).
pub fn cli_agent(name: &str, script: &Path, extra: &str) -> String {
    format!(
        "[agents.{name}]\nkind = \"cli\"\ncommand = \"{}\"\nargs = [\"{{prompt}}\"]\nflavor = \"generic\"\n{extra}\n",
        script.display()
    )
}

/// A configuration's `[workflows.NAME]` table: `steps` as (agent, role), at most
/// `max_iterations` rounds.
pub fn workflow(name: &str, max_iterations: u32, steps: &[(&str, &str)]) -> String {
    let steps: String = steps
        .iter()
        .map(|(agent, role)| format!("  {{ agent = \"{agent}\", role = \"{role}\" }},\n"))
        .collect();
    format!("[workflows.{name}]\nmax_iterations = {max_iterations}\nsteps = [\n{steps}]\n\n")
}

/// Write an executable `/bin/sh` script (a CLI agent, for tests).
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A running `troupe serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Sent as the bearer token by [`Server::request`] and the helpers built on it.
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Server {
    /// Start `cmd` (a `troupe … serve` command) and wait until it says where it listens.
    pub fn spawn(mut cmd: Command, token: Option<String>) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Keep reading so the server never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let base = line
            .split_whitespace()
            .find(|t| t.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches(',')
            .replace("0.0.0.0", "127.0.0.1");
        Server { child, base, token, client: reqwest::Client::new() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.request(reqwest::Method::GET, path).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.request(reqwest::Method::POST, path).json(body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/execute`, expecting 202; the run's id.
    pub async fn execute(&self, body: Value) -> String {
        let (status, v) = self.post("/api/execute", &body).await;
        assert_eq!(status, 202, "{v}");
        v["run_id"].as_str().unwrap().to_string()
    }

    /// The whole SSE stream of a run (it ends after run_finished), as (event, data) pairs.
    pub async fn events(&self, id: &str) -> Vec<(String, Value)> {
        let r = self
            .request(reqwest::Method::GET, &format!("/api/runs/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"),
            "{:?}",
            r.headers()
        );
        let text = tokio::time::timeout(Duration::from_secs(60), r.text()).await.unwrap().unwrap();
        parse_sse(&text)
    }

    /// Poll `GET /api/runs/{id}` until `pred` holds for the answer.
    pub async fn wait_for(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, v) = self.get(&format!("/api/runs/{id}")).await;
            assert_eq!(status, 200, "{v}");
            if pred(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "run {id} never got there: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait for the exit code.
    pub fn stop(mut self) -> Option<i32> {
        signal(self.child.id(), "TERM");
        wait_exit(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send a signal (`TERM`, `INT`, `KILL`) to a process.
pub fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args(["-s", sig, &pid.to_string()]).status().unwrap().success());
}

/// Wait for `child` to exit; its exit code.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Server-Sent Events as (event, data) pairs, parsed by `eventsource-stream` (what troupe's
/// own client uses).
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let bytes =
        futures::stream::iter([Ok::<_, std::convert::Infallible>(text.as_bytes().to_vec())]);
    futures::executor::block_on(bytes.eventsource().collect::<Vec<_>>())
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (e.event, serde_json::from_str(&e.data).unwrap())
        })
        .collect()
}

/// `[agents.local-code]` and `[agents.local-instruct]` on the smallest model (SmolLM2-135M,
/// installed by `scripts/setup.sh --assets-only`) with their own managed server on a free
/// port: for tests that check the flow, not the answers. The built-in agents run
/// Qwen2.5-Coder-1.5B, which the test assets leave out (1.1 GB) and which is ~15 times slower.
pub fn smol_local_agents() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18765);
    let mut out = String::new();
    for (name, role) in [("local-code", "implement"), ("local-instruct", "review")] {
        out.push_str(
            &r#"
[agents.NAME]
kind = "llamacpp"
base_url = "http://127.0.0.1:PORT/v1"
model = "SmolLM2-135M-Instruct"
role = "ROLE"
timeout_secs = 300
temperature = 0.2
max_tokens = 256

[agents.NAME.server]
command = "{assets}/llama/llama-server"
args = ["-m", "{assets}/models/SmolLM2-135M-Instruct.Q4_1.gguf", "--host", "{host}", "--port", "{port}", "-t", "{threads}", "-tb", "{batch_threads}", "-c", "4096", "-np", "2", "--no-webui"]
env = { LD_LIBRARY_PATH = "{assets}/llama" }
startup_timeout_secs = 60
"#
            .replace("NAME", name)
            .replace("PORT", &port.to_string())
            .replace("ROLE", role),
        );
    }
    out
}

/// The installed offline assets with the local model server and models; fails saying what
/// to run when they are not installed.
pub fn local_model_assets() -> PathBuf {
    let assets = assets_with("llama/llama-server");
    assets_with("models");
    assets
}

/// The installed offline assets ([`installed_assets`]), which must hold `needed`: the test
/// fails saying what to run when they do not.
pub fn assets_with(needed: &str) -> PathBuf {
    let assets = installed_assets();
    assert!(
        assets.join(needed).exists(),
        "offline assets missing in {} ({needed}); run `scripts/setup.sh --assets-only`",
        assets.display()
    );
    assets
}

/// Where `scripts/setup.sh` installed the offline assets, as troupe finds them by default:
/// `$TROUPE_ASSETS`, else the user's data folder's `troupe/assets`. Tests link it into their
/// own data folders and point `TROUPE_ASSETS` there; nothing is installed twice.
pub fn installed_assets() -> PathBuf {
    if let Some(dir) = std::env::var_os("TROUPE_ASSETS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_default()
        .join("troupe/assets")
}

/// A program in a pseudo-terminal (`script` allocates it), as a person would use it: what is
/// sent is typed; the terminal's cursor-position queries are answered.
pub struct Pty {
    child: Child,
    stdin: std::process::ChildStdin,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Pty {
    /// Run the shell command line `cmdline` in a 120×40 terminal, with the working folder
    /// and environment of `like` (its program and arguments are not used).
    pub fn start(cmdline: &str, like: Command) -> Pty {
        use std::io::Read;
        let mut cmd = Command::new("script");
        cmd.args(["-qfec", &format!("stty cols 120 rows 40; {cmdline}"), "/dev/null"]);
        if let Some(dir) = like.get_current_dir() {
            cmd.current_dir(dir);
        }
        for (k, v) in like.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .env("TERM", "xterm")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty { child, stdin, output: rx, seen: String::new() }
    }

    /// Type `s`.
    pub fn send(&mut self, s: &str) {
        use std::io::Write;
        self.stdin.write_all(s.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Read until `needle` shows up after what was already consumed; returns what was read.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = String::new();
        loop {
            if let Some(i) = self.seen.find(needle) {
                let upto = i + needle.len();
                read.push_str(&self.seen[..upto]);
                self.seen.drain(..upto);
                return read;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {needle:?}; got:\n{read}{}", self.seen);
            if let Ok(chunk) = self.output.recv_timeout(left.min(Duration::from_millis(200))) {
                let chunk = String::from_utf8_lossy(&chunk).to_string();
                // Answer "where is the cursor?" so a line editor does not wait for it.
                for _ in 0..chunk.matches("\x1b[6n").count() {
                    self.send("\x1b[1;1R");
                }
                self.seen.push_str(&chunk);
            }
        }
    }

    /// Close the input and wait for the exit code.
    pub fn wait(mut self) -> Option<i32> {
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "the program did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Run git in `dir` (troupe's own runner: a fixed identity, no user hooks); its standard
/// output (a failure fails the test, naming the command and git's error).
pub fn git(dir: &Path, args: &[&str]) -> String {
    troupe_change::git::Git::new(dir).run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Copy a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Whether the Python project in `dir` passes its own tests.
pub fn unittest(dir: &Path) -> bool {
    Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// For the end-to-end tests with the 1.5B local model: the installed assets (failing when the
/// model is missing), a copy of `examples/sample-project` in `tmp/sample`, committed in a new
/// git repository, and the data folder `tmp/home`.
pub struct Sample {
    pub assets: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
}

impl Sample {
    pub fn new(tmp: &Path) -> Sample {
        let assets = installed_assets();
        let model = assets.join("models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
        assert!(model.exists(), "{} is missing: run scripts/setup.sh", model.display());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = tmp.join("sample");
        copy_dir(&root.join("examples/sample-project"), &project);
        git(&project, &["init", "-q"]);
        git(&project, &["add", "-A"]);
        git(&project, &["commit", "-qm", "sample"]);
        Sample { assets, project, home: tmp.join("home") }
    }

    /// `troupe ARGS` in the project with no API token, configuration file or `RUST_LOG` from
    /// outside (not run yet).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
        c.args(args)
            .current_dir(&self.project)
            .env("TROUPE_HOME", &self.home)
            .env("TROUPE_ASSETS", &self.assets)
            .env_remove("TROUPE_API_TOKEN")
            .env_remove("TROUPE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// [`Sample::cmd`] run; its output, also printed (a run of minutes shows where it went
    /// wrong).
    pub fn troupe(&self, args: &[&str]) -> std::process::Output {
        let out = self.cmd(args).output().unwrap();
        eprintln!(
            "$ troupe {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
