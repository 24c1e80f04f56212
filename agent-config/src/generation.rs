//! How to generate an answer: the settings a request carries (and an agent's configuration
//! supplies as defaults), and the shape the answer must have.

use serde::Serialize;

/// The shape the answer must have.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    Json,
    /// JSON matching a JSON Schema (enforced by servers that support it: llama.cpp,
    /// OpenAI, Ollama).
    JsonSchema {
        /// A name for the schema (OpenAI requires one).
        name: String,
        /// The schema.
        schema: serde_json::Value,
    },
}

/// Generation settings; `None` leaves the agent's configured value (`[agents.NAME]`), and
/// when that is unset too, the server's default.
///
/// Each endpoint receives them in its own field names: OpenAI-compatible servers
/// `temperature`, `top_p`, `max_tokens`, `stop`, `seed`; llama.cpp also `top_k`, `min_p`,
/// `repeat_penalty` and `cache_prompt`; Ollama everything inside `options` (`num_predict`,
/// `num_ctx`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GenerationOptions {
    /// Sampling temperature (0 = as deterministic as the server allows).
    pub temperature: Option<f32>,
    /// Nucleus sampling probability mass (0 to 1).
    pub top_p: Option<f32>,
    /// Sample from the this many most likely tokens only (llama.cpp, Ollama).
    pub top_k: Option<u32>,
    /// Minimum probability relative to the most likely token (llama.cpp, Ollama).
    pub min_p: Option<f32>,
    /// Penalty for repeated tokens, 1 = none (llama.cpp, Ollama).
    pub repeat_penalty: Option<f32>,
    /// Upper bound of completion tokens.
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// The context window to ask for (Ollama `num_ctx`; other servers fix it at start).
    pub context_tokens: Option<u32>,
    /// Text, JSON, or JSON matching a schema.
    pub output: OutputFormat,
}

impl GenerationOptions {
    /// These options with every unset value taken from `defaults` (an agent's configured
    /// settings): a request's explicit values win. `stop` is taken whole from `defaults`
    /// when empty here; `output` is never defaulted.
    pub fn or_defaults(&self, defaults: &GenerationOptions) -> GenerationOptions {
        GenerationOptions {
            temperature: self.temperature.or(defaults.temperature),
            top_p: self.top_p.or(defaults.top_p),
            top_k: self.top_k.or(defaults.top_k),
            min_p: self.min_p.or(defaults.min_p),
            repeat_penalty: self.repeat_penalty.or(defaults.repeat_penalty),
            max_tokens: self.max_tokens.or(defaults.max_tokens),
            stop: if self.stop.is_empty() { defaults.stop.clone() } else { self.stop.clone() },
            seed: self.seed.or(defaults.seed),
            context_tokens: self.context_tokens.or(defaults.context_tokens),
            output: self.output.clone(),
        }
    }
}
