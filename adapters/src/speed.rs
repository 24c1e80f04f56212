//! How fast an agent's model reads prompts and writes answers, measured through the agent
//! itself (for `troupe doctor` and the benchmark in docs/BENCHMARKS.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::agent::{Agent, AgentRequest, CallContext, ChunkSink, GenerationOptions, Tokens};
use crate::error::Result;

/// One measured call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedSample {
    /// Tokens of the prompt and of the answer (as the server counted them).
    pub tokens: Tokens,
    /// Time from sending to the first streamed text, in milliseconds: reading the prompt,
    /// plus the first token.
    pub first_token_ms: f64,
    /// Time from sending to the end, in milliseconds.
    pub total_ms: f64,
}

impl SpeedSample {
    /// Prompt tokens read per second (prompt tokens over the time to the first token).
    pub fn prompt_tokens_per_sec(&self) -> f64 {
        if self.first_token_ms <= 0.0 {
            return 0.0;
        }
        self.tokens.prompt as f64 / (self.first_token_ms / 1000.0)
    }

    /// Answer tokens written per second after the first one.
    pub fn decode_tokens_per_sec(&self) -> f64 {
        let span = (self.total_ms - self.first_token_ms) / 1000.0;
        if span <= 0.0 || self.tokens.completion < 2 {
            return 0.0;
        }
        (self.tokens.completion - 1) as f64 / span
    }
}

/// Ask `agent` `prompt` with streaming, at temperature 0 and at most `max_tokens`, and time
/// it. The agent's other generation settings apply.
pub async fn measure(
    agent: &dyn Agent,
    prompt: &str,
    max_tokens: u32,
    ctx: &CallContext,
) -> Result<SpeedSample> {
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let seen = first.clone();
    let ctx = ctx.clone().with_chunks(ChunkSink::new(move |_| {
        let mut f = seen.lock().unwrap_or_else(|e| e.into_inner());
        f.get_or_insert_with(Instant::now);
    }));
    let req = AgentRequest::prompt(prompt).with_options(GenerationOptions {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Default::default()
    });
    let started = Instant::now();
    let r = agent.call(&req, &ctx).await?;
    let total = started.elapsed();
    let first = first.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t - started);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(SpeedSample {
        tokens: r.usage,
        first_token_ms: ms(first.unwrap_or(total)),
        total_ms: ms(total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_two_phases() {
        let s = SpeedSample {
            tokens: Tokens { prompt: 100, completion: 11 },
            first_token_ms: 500.0,
            total_ms: 1500.0,
        };
        assert!((s.prompt_tokens_per_sec() - 200.0).abs() < 1e-9);
        assert!((s.decode_tokens_per_sec() - 10.0).abs() < 1e-9);
        let none = SpeedSample { tokens: Tokens { prompt: 100, completion: 1 }, ..s.clone() };
        assert_eq!(none.decode_tokens_per_sec(), 0.0);
        let instant = SpeedSample { first_token_ms: 0.0, ..s };
        assert_eq!(instant.prompt_tokens_per_sec(), 0.0);
    }

    #[tokio::test]
    async fn a_scripted_agent_is_measured() {
        let agent = crate::testing::ScriptedAgent::new("s").then_stream(&["a", "b", "c"]);
        let s = measure(&agent, "hi", 8, &CallContext::new()).await.unwrap();
        assert!(s.tokens.completion >= 1 && s.total_ms >= s.first_token_ms, "{s:?}");
        let sent = agent.calls();
        assert_eq!(sent[0].options.max_tokens, Some(8));
        assert_eq!(sent[0].options.temperature, Some(0.0));
    }
}
