//! The HTTP adapters and what they share: pooled clients and time bounds (`timeouts.rs`),
//! sending and reading within them (`endpoint.rs`), turning HTTP statuses and provider error
//! bodies into [`AdapterError`](crate::error::AdapterError) classes (`errors.rs`), and the SSE
//! and NDJSON stream decoders (`decode.rs`).
//!
//! - [`OpenAiAgent`]: any OpenAI-compatible server (`kind = "openai"`) and llama.cpp's
//!   `llama-server` (`kind = "llamacpp"`, which adds `/health` and `/props`).
//! - [`OllamaAgent`]: Ollama's native API (`/api/chat` or `/api/generate`), plus the model
//!   management calls in [`OllamaClient`].

mod decode;
mod endpoint;
mod errors;
mod generation;
mod ollama;
mod openai;
mod timeouts;

use std::fmt;

use serde::Serialize;

pub use ollama::{OllamaAgent, OllamaClient, OllamaMode, PullProgress};
pub use openai::{LlamaHealth, OpenAiAgent};

pub(crate) use decode::{Collected, LineSplitter, SseDecoder, SseItem};
pub(crate) use endpoint::Endpoint;
pub(crate) use errors::{
    chain, classify_reqwest, classify_status, known_window, parse_retry_after, quote,
};
pub(crate) use timeouts::shared_client;
pub use timeouts::{
    DEFAULT_FIRST_BYTE, DEFAULT_LOCAL_FIRST_BYTE, LOCAL_PROMPT_TOKENS_PER_SEC, Timeouts,
};

/// The largest error body or non-streamed answer read into memory.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// The most of an error body quoted in a message.
const MAX_QUOTE: usize = 2000;

/// An API key read from the environment. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key in the environment variable `var`, if set and not empty.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| ApiKey(v.trim().to_string()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A model a server offers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Its name (what `model` must say).
    pub name: String,
    /// Bytes on disk, when the server says.
    pub size: Option<u64>,
    /// When it was last changed, as the server wrote it.
    pub modified: Option<String>,
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn api_keys_are_redacted() {
        let k = ApiKey("sk-secret".into());
        assert!(!format!("{k:?}").contains("secret"));
    }
}
