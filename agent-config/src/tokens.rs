//! Token counts.

use serde::{Deserialize, Serialize};

/// Token counts: what one call used, or the sum over many calls (a step, a run, a
/// project). The one type for token usage in troupe: adapters report it, the runtime records
/// and adds it up, the API and `troupe usage` show it.
///
/// Serialised as `{"prompt": …, "completion": …}`; the OpenAI-style names `prompt_tokens`
/// and `completion_tokens` are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Tokens of the prompt.
    #[serde(alias = "prompt_tokens")]
    pub prompt: u64,
    /// Tokens of the answer.
    #[serde(alias = "completion_tokens")]
    pub completion: u64,
}

impl Tokens {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }

    /// Add another count.
    pub fn add(&mut self, other: Tokens) {
        self.prompt += other.prompt;
        self.completion += other.completion;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_written_with_short_names_and_read_with_either() {
        let t = Tokens { prompt: 7, completion: 3 };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"prompt":7,"completion":3}"#);
        let openai: Tokens =
            serde_json::from_str(r#"{"prompt_tokens": 7, "completion_tokens": 3}"#).unwrap();
        assert_eq!(openai, t);
        assert!(serde_json::from_str::<Tokens>(r#"{"prompt": 7}"#).is_err(), "both are needed");
        let mut sum = t;
        sum.add(Tokens { prompt: 1, completion: 2 });
        assert_eq!((sum.prompt, sum.completion, sum.total()), (8, 5, 13));
    }
}
