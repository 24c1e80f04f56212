//! `troupe test-agent AGENT "prompt"`: one call through the agent's full resilience stack.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use troupe_adapters::registry::{AgentRegistry, RegistryOptions};
use troupe_adapters::resilience::OfflineMode;
use troupe_adapters::{
    AdapterError, AgentEvent, AgentRequest, CallContext, CancellationToken, ChunkSink, EventSink,
    GenerationOptions,
};
use troupe_runtime::usage::{self, CallRecord};
use troupe_workflows::Config;

use super::exit;

/// How to ask.
#[derive(Debug, Clone, Default)]
pub struct TestAgentOptions {
    /// Upper bound of answer tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// A system prompt.
    pub system: Option<String>,
    /// Print the response as JSON at the end instead of streaming text.
    pub json: bool,
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `troupe test-agent`.
pub async fn test_agent(
    config: &Config,
    agent: &str,
    prompt: &str,
    opts: TestAgentOptions,
) -> Result<u8> {
    if !config.agents.contains_key(agent) {
        let known: Vec<&str> = config.agents.keys().map(String::as_str).collect();
        eprintln!("troupe: no agent named '{agent}' (configured: {})", known.join(", "));
        return Ok(exit::USAGE);
    }
    let registry = AgentRegistry::build(
        &config.agents,
        RegistryOptions {
            offline: OfflineMode::resolve(config.settings.offline),
            assets_dir: config.assets_dir(),
            limiters: None,
        },
    );
    let target = match registry.agent(agent) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::USAGE);
        }
    };

    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t.cancel();
        }
    });
    let streamed = Arc::new(AtomicBool::new(false));
    let mut ctx =
        CallContext::new().with_cancel(token).with_workdir(config.project_path()).with_events({
            let streamed = streamed.clone();
            EventSink::new(move |e| {
                // Text streamed by an attempt that failed is not the answer.
                let discarded = matches!(
                    e,
                    AgentEvent::RetryScheduled { .. } | AgentEvent::FallbackTaken { .. }
                );
                if discarded && streamed.swap(false, Ordering::Relaxed) {
                    println!("\n[the text above came from a failed attempt; discard it]");
                }
                eprintln!("· {e}");
            })
        });
    if !opts.json {
        let streamed = streamed.clone();
        ctx = ctx.with_chunks(ChunkSink::new(move |text| {
            streamed.store(true, Ordering::Relaxed);
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }));
    }
    let mut request = AgentRequest::prompt(prompt).with_options(GenerationOptions {
        temperature: opts.temperature,
        max_tokens: opts.max_tokens,
        ..Default::default()
    });
    request.system = opts.system.clone();

    let started = std::time::Instant::now();
    let result = target.call(&request, &ctx).await;
    registry.shutdown().await;
    // Counted in `troupe usage` and the metrics, marked as a test-agent call.
    if !matches!(result, Err(AdapterError::Cancelled { .. })) {
        let record = CallRecord::of_call(
            usage::TEST_AGENT,
            config,
            agent,
            &config.project_path(),
            &result,
            started.elapsed(),
        );
        if let Err(e) = usage::CallLog::new(&config.data_dir()).append(&record) {
            eprintln!("troupe: warning: this call is not counted in `troupe usage`: {e}");
        }
    }
    match result {
        Ok(r) => {
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(exit::OK);
            }
            if !r.text.ends_with('\n') {
                println!();
            }
            let fallback = if r.fallback_used() {
                let failed: Vec<&str> = r.failed.iter().map(|f| f.agent.as_str()).collect();
                format!("yes (after {})", failed.join(", "))
            } else {
                "no".into()
            };
            eprintln!(
                "── agent {} · model {} · tokens {} in + {} out{} · latency {} · retries {} · fallback {}",
                r.agent,
                r.model.as_deref().unwrap_or("?"),
                r.usage.prompt,
                r.usage.completion,
                if r.usage_estimated { " (estimated)" } else { "" },
                secs(r.latency),
                r.retries(),
                fallback,
            );
            Ok(exit::OK)
        }
        Err(e) => {
            if streamed.load(Ordering::Relaxed) {
                println!();
            }
            eprintln!("troupe: {e}");
            Ok(match e {
                AdapterError::Config { .. } => exit::USAGE,
                _ => exit::FAILED,
            })
        }
    }
}
