//! Offline mode: agents whose endpoint is not on this machine are refused before any
//! connection is opened.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext};
use crate::error::{AdapterError, Result};

/// Whether troupe is offline, and why. Cloned handles share one switch.
#[derive(Debug, Clone, Default)]
pub struct OfflineMode {
    reason: Arc<RwLock<Option<String>>>,
}

impl OfflineMode {
    /// Online.
    pub fn online() -> OfflineMode {
        OfflineMode::default()
    }

    /// Offline for `reason` (`--offline`, `settings.offline`, `no route beyond loopback`).
    pub fn offline(reason: impl Into<String>) -> OfflineMode {
        let m = OfflineMode::default();
        m.set(Some(reason.into()));
        m
    }

    /// Offline when `configured` (the flag or setting), else when this machine has no
    /// route beyond loopback.
    pub fn resolve(configured: bool) -> OfflineMode {
        if configured {
            OfflineMode::offline("--offline or settings.offline")
        } else if !has_route_beyond_loopback() {
            OfflineMode::offline("no network route beyond loopback was found")
        } else {
            OfflineMode::online()
        }
    }

    /// Go offline (`Some(reason)`) or online (`None`).
    pub fn set(&self, reason: Option<String>) {
        *self.reason.write().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Why troupe is offline, if it is.
    pub fn reason(&self) -> Option<String> {
        self.reason.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether troupe is offline.
    pub fn is_offline(&self) -> bool {
        self.reason.read().map(|r| r.is_some()).unwrap_or(true)
    }
}

/// Whether the kernel has a route to a non-local address. Connecting a UDP socket sends
/// nothing; it only asks for a route (to documentation addresses that are never used).
pub fn has_route_beyond_loopback() -> bool {
    let probe = |bind: SocketAddr, to: SocketAddr| {
        UdpSocket::bind(bind).and_then(|s| s.connect(to)).is_ok()
    };
    probe(
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 9)),
    ) || probe(
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9)),
    )
}

/// Refuses a non-local agent while troupe is offline; passes every call otherwise.
#[derive(Debug)]
pub struct OfflineGuard {
    inner: Arc<dyn Agent>,
    mode: OfflineMode,
}

impl OfflineGuard {
    /// `inner` guarded by `mode` (local agents pass even offline).
    pub fn new(inner: Arc<dyn Agent>, mode: OfflineMode) -> OfflineGuard {
        OfflineGuard { inner, mode }
    }
}

#[async_trait]
impl Agent for OfflineGuard {
    // A refused agent is not asked anything, not even its window: that would reach its
    // (non-local) server.
    async fn context_window(&self, ctx: &CallContext) -> Option<u32> {
        if !self.inner.info().local && self.mode.reason().is_some() {
            return None;
        }
        self.inner.context_window(ctx).await
    }

    async fn count_tokens(&self, text: &str, ctx: &CallContext) -> Option<u64> {
        if !self.inner.info().local && self.mode.reason().is_some() {
            return None;
        }
        self.inner.count_tokens(text, ctx).await
    }

    fn info(&self) -> &AgentInfo {
        self.inner.info()
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let info = self.inner.info();
        if !info.local
            && let Some(reason) = self.mode.reason()
        {
            return Err(AdapterError::OfflineRefused {
                agent: info.name.clone(),
                endpoint: info.endpoint.clone(),
                reason,
            });
        }
        self.inner.call(req, ctx).await
    }
}
