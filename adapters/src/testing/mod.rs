//! Test doubles (feature `test-utils`): a scripted fake agent that records what it was
//! asked, and [`MockServer`], a real HTTP server speaking the OpenAI or Ollama API with
//! injectable faults.
//!
//! [`ScriptedAgent`] is the one scripted agent of every crate's tests: it answers (in
//! chunks, with estimated or exact usage), fails, panics or hangs until cancelled, as its
//! script says.
//!
//! ```
//! # async fn demo() {
//! use troupe_adapters::testing::ScriptedAgent;
//! use troupe_adapters::{Agent, AdapterError, AgentRequest, CallContext};
//!
//! let agent = ScriptedAgent::new("fake")
//!     .then_fail(AdapterError::transient("fake", "503"))
//!     .then_answer("hello");
//! let ctx = CallContext::new();
//! assert!(agent.call(&AgentRequest::prompt("hi"), &ctx).await.is_err());
//! assert_eq!(agent.call(&AgentRequest::prompt("hi"), &ctx).await.unwrap().text, "hello");
//! assert_eq!(agent.calls().len(), 2);
//! # }
//! ```

mod mock_server;

pub use mock_server::{Fault, MockApi, MockServer, Recorded};

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::agent::{Agent, AgentInfo, AgentRequest, AgentResponse, CallContext, Tokens};
use crate::error::{AdapterError, Result};

/// One scripted outcome.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this text, streamed in these pieces.
    Answer(Vec<String>),
    /// Answer with this text, streamed in these pieces, reporting exactly this usage.
    AnswerUsing(Vec<String>, Tokens),
    /// Fail with this error.
    Fail(AdapterError),
    /// Panic with this message (what an adapter bug looks like to its caller).
    Panic(String),
    /// Wait until the call is cancelled, then fail as cancelled.
    Hang,
}

/// An agent that plays a script: each call takes the next step; the last step repeats.
#[derive(Debug)]
pub struct ScriptedAgent {
    info: AgentInfo,
    script: Mutex<VecDeque<Step>>,
    last: Mutex<Option<Step>>,
    delay: Duration,
    calls: Mutex<Vec<(AgentRequest, Instant)>>,
    window: Option<u32>,
    chars_per_token: Option<usize>,
    /// Calls under way now, and the most there ever were at once.
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl ScriptedAgent {
    /// A local agent named `name` with an empty script (it answers "ok").
    pub fn new(name: &str) -> ScriptedAgent {
        ScriptedAgent {
            info: AgentInfo {
                name: name.to_string(),
                kind: "scripted".to_string(),
                model: Some("scripted-model".to_string()),
                endpoint: "scripted".to_string(),
                local: true,
            },
            script: Mutex::new(VecDeque::new()),
            last: Mutex::new(None),
            delay: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
            window: None,
            chars_per_token: None,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// The same agent reporting a context window of `tokens` ([`Agent::context_window`]).
    pub fn with_context_window(mut self, tokens: u32) -> ScriptedAgent {
        self.window = Some(tokens);
        self
    }

    /// The same agent counting tokens ([`Agent::count_tokens`]) as one per `chars`
    /// characters, rounded up (`chars` of 0 counts as 1).
    pub fn with_token_counting(mut self, chars: usize) -> ScriptedAgent {
        self.chars_per_token = Some(chars.max(1));
        self
    }

    /// The same agent, presented as not local (offline mode refuses it).
    pub fn remote(mut self) -> ScriptedAgent {
        self.info.local = false;
        self.info.endpoint = "https://remote.invalid".into();
        self
    }

    /// The same agent, presented as an adapter of `kind` (`cli`, `openai`, `llamacpp`, …).
    pub fn with_kind(mut self, kind: &str) -> ScriptedAgent {
        self.info.kind = kind.to_string();
        self
    }

    /// Each call takes `delay` (on tokio's clock) before its outcome; cancellable.
    pub fn with_delay(mut self, delay: Duration) -> ScriptedAgent {
        self.delay = delay;
        self
    }

    /// Then answer `text` (in one chunk).
    pub fn then_answer(self, text: &str) -> ScriptedAgent {
        self.then(Step::Answer(vec![text.to_string()]))
    }

    /// Then answer in these chunks.
    pub fn then_stream(self, chunks: &[&str]) -> ScriptedAgent {
        self.then(Step::Answer(chunks.iter().map(|c| c.to_string()).collect()))
    }

    /// Then answer `text` (in one chunk), reporting `prompt` and `completion` tokens.
    pub fn then_answer_using(self, text: &str, prompt: u64, completion: u64) -> ScriptedAgent {
        let usage = Tokens { prompt, completion };
        self.then(Step::AnswerUsing(vec![text.to_string()], usage))
    }

    /// Then panic.
    pub fn then_panic(self) -> ScriptedAgent {
        self.then(Step::Panic("scripted panic".to_string()))
    }

    /// Then wait until cancelled.
    pub fn then_hang(self) -> ScriptedAgent {
        self.then(Step::Hang)
    }

    /// Then fail with `error`.
    pub fn then_fail(self, error: AdapterError) -> ScriptedAgent {
        self.then(Step::Fail(error))
    }

    /// Then take `step`.
    pub fn then(self, step: Step) -> ScriptedAgent {
        self.script.lock().unwrap_or_else(|e| e.into_inner()).push_back(step);
        self
    }

    /// The prompts received, in order, as the agent saw them
    /// ([`AgentRequest::render_prompt`]).
    pub fn prompts(&self) -> Vec<String> {
        self.calls().iter().map(AgentRequest::render_prompt).collect()
    }

    /// The requests received, in order.
    pub fn calls(&self) -> Vec<AgentRequest> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// The most calls that were under way at once.
    pub fn peak_calls(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// When each request arrived (tokio's clock).
    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, t)| *t).collect()
    }

    fn next_step(&self) -> Step {
        let next = self.script.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match next {
            Some(s) => {
                *last = Some(s.clone());
                s
            }
            None => last.clone().unwrap_or(Step::Answer(vec!["ok".into()])),
        }
    }
}

#[async_trait]
impl Agent for ScriptedAgent {
    async fn context_window(&self, _ctx: &CallContext) -> Option<u32> {
        self.window
    }

    async fn count_tokens(&self, text: &str, _ctx: &CallContext) -> Option<u64> {
        let per = self.chars_per_token?;
        Some((text.chars().count() as u64).div_ceil(per as u64))
    }

    fn info(&self) -> &AgentInfo {
        &self.info
    }

    async fn call(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = self.play(req, ctx).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl ScriptedAgent {
    async fn play(&self, req: &AgentRequest, ctx: &CallContext) -> Result<AgentResponse> {
        let started = Instant::now();
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((req.clone(), started));
        let step = self.next_step();
        if !self.delay.is_zero() {
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return Err(AdapterError::cancelled(&self.info.name)),
                _ = tokio::time::sleep(self.delay) => {}
            }
        }
        let (chunks, usage) = match step {
            Step::Fail(e) => return Err(e),
            #[allow(clippy::panic)]
            Step::Panic(message) => panic!("{message}"),
            Step::Hang => {
                ctx.cancel.cancelled().await;
                return Err(AdapterError::cancelled(&self.info.name));
            }
            Step::AnswerUsing(chunks, usage) => (chunks, usage),
            Step::Answer(chunks) => {
                let usage = Tokens {
                    prompt: req.estimated_tokens(),
                    completion: (chunks.concat().len() as u64).div_ceil(4),
                };
                (chunks, usage)
            }
        };
        for c in &chunks {
            ctx.chunk(c);
        }
        let mut r = AgentResponse::new(&self.info.name, chunks.concat());
        r.usage = usage;
        r.model = self.info.model.clone();
        r.latency = started.elapsed();
        Ok(r)
    }
}
