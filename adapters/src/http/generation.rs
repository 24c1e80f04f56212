//! Generation settings on the wire, and what servers say about their context window and
//! tokenizer: one place for each endpoint kind's own field names (issue 15).

use serde_json::{Value, json};

use crate::agent::GenerationOptions;
use crate::config::AgentKind;

/// Put `o` into an OpenAI-compatible chat body. Every server gets `temperature`, `top_p`,
/// `max_tokens`, `stop` and `seed`; a llama.cpp server (`kind = llamacpp`) also `top_k`,
/// `min_p`, `repeat_penalty` and `cache_prompt: true` (reuse the KV cache of the prompt's
/// common prefix across calls). Other OpenAI-compatible servers may refuse fields they do
/// not know, so they never receive the llama.cpp ones.
pub(crate) fn openai_fields(body: &mut Value, o: &GenerationOptions, kind: AgentKind) {
    let mut fields = shared_fields(o);
    fields.push(("max_tokens", o.max_tokens.map(|n| json!(n))));
    if kind == AgentKind::Llamacpp {
        fields.extend(sampler_fields(o));
        fields.push(("cache_prompt", Some(json!(true))));
    }
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
}

/// Ollama's `options` object for `o` (`num_predict`, `num_ctx`, …); empty when nothing is
/// set.
pub(crate) fn ollama_options(o: &GenerationOptions) -> Value {
    let mut fields = shared_fields(o);
    fields.extend(sampler_fields(o));
    fields.push(("num_predict", o.max_tokens.map(|n| json!(n))));
    fields.push(("num_ctx", o.context_tokens.map(|c| json!(c))));
    let options: serde_json::Map<String, Value> =
        fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
    Value::Object(options)
}

/// The settings every endpoint names alike (unset ones as `None`).
fn shared_fields(o: &GenerationOptions) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("temperature", o.temperature.map(|t| json!(t))),
        ("top_p", o.top_p.map(|p| json!(p))),
        ("stop", (!o.stop.is_empty()).then(|| json!(o.stop))),
        ("seed", o.seed.map(|s| json!(s))),
    ]
}

/// The llama.cpp sampler settings that Ollama also takes (unset ones as `None`).
fn sampler_fields(o: &GenerationOptions) -> [(&'static str, Option<Value>); 3] {
    [
        ("top_k", o.top_k.map(|k| json!(k))),
        ("min_p", o.min_p.map(|p| json!(p))),
        ("repeat_penalty", o.repeat_penalty.map(|r| json!(r))),
    ]
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0)
}

/// The context window of one request slot from llama.cpp's `/props`
/// (`default_generation_settings.n_ctx`; older servers put `n_ctx` at the top).
pub(crate) fn window_from_props(v: &Value) -> Option<u32> {
    as_u32(v.get("default_generation_settings").and_then(|g| g.get("n_ctx")))
        .or_else(|| as_u32(v.get("n_ctx")))
}

/// The context window from an OpenAI-compatible `/v1/models` list, for `model` (or the
/// only model listed): vLLM's `max_model_len`, `context_length` (LM Studio and others), or
/// llama.cpp's `meta.n_ctx` / `meta.n_ctx_train`.
pub(crate) fn window_from_models(v: &Value, model: &str) -> Option<u32> {
    let list = v.get("data").and_then(Value::as_array)?;
    let entry = list
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
        .or_else(|| if list.len() == 1 { list.first() } else { None })?;
    as_u32(entry.get("max_model_len"))
        .or_else(|| as_u32(entry.get("context_length")))
        .or_else(|| as_u32(entry.get("meta").and_then(|m| m.get("n_ctx"))))
        .or_else(|| as_u32(entry.get("meta").and_then(|m| m.get("n_ctx_train"))))
}

/// The context window from Ollama's `/api/show`: a `num_ctx` in the model's parameters
/// (what it runs with), else the architecture's `<arch>.context_length` (what it was
/// trained for).
pub(crate) fn window_from_ollama_show(v: &Value) -> Option<u32> {
    let from_params = v.get("parameters").and_then(Value::as_str).and_then(|p| {
        p.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("num_ctx")).then(|| it.next()?.parse::<u32>().ok()).flatten()
        })
    });
    from_params.or_else(|| {
        let info = v.get("model_info").and_then(Value::as_object)?;
        info.iter().find(|(k, _)| k.ends_with(".context_length")).and_then(|(_, v)| as_u32(Some(v)))
    })
}

/// The token count in llama.cpp's `/tokenize` answer (`{"tokens": [...]}`).
pub(crate) fn tokens_from_tokenize(v: &Value) -> Option<u64> {
    v.get("tokens").and_then(Value::as_array).map(|t| t.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> GenerationOptions {
        GenerationOptions {
            temperature: Some(0.2),
            top_p: Some(0.9),
            top_k: Some(40),
            min_p: Some(0.05),
            repeat_penalty: Some(1.1),
            max_tokens: Some(64),
            stop: vec!["END".into()],
            seed: Some(7),
            context_tokens: Some(4096),
            ..Default::default()
        }
    }

    #[test]
    fn each_kind_gets_its_own_field_names() {
        let mut llama = json!({});
        openai_fields(&mut llama, &all(), AgentKind::Llamacpp);
        assert_eq!(llama["top_k"], 40);
        assert_eq!(llama["repeat_penalty"].as_f64().map(|f| (f * 100.0).round()), Some(110.0));
        assert_eq!(llama["cache_prompt"], true);
        assert_eq!(llama["max_tokens"], 64);
        let mut openai = json!({});
        openai_fields(&mut openai, &all(), AgentKind::Openai);
        assert_eq!(openai["seed"], 7);
        assert_eq!(openai["stop"], json!(["END"]));
        for llama_only in ["top_k", "min_p", "repeat_penalty", "cache_prompt"] {
            assert!(openai.get(llama_only).is_none(), "{llama_only} sent to an OpenAI server");
        }
        let o = ollama_options(&all());
        assert_eq!(o["num_predict"], 64);
        assert_eq!(o["num_ctx"], 4096);
        assert_eq!(o["top_k"], 40);
        assert!(o.get("max_tokens").is_none());
        assert_eq!(ollama_options(&GenerationOptions::default()), json!({}));
    }

    #[test]
    fn windows_are_read_from_each_servers_answer() {
        let props = json!({"default_generation_settings": {"n_ctx": 8192}, "total_slots": 1});
        assert_eq!(window_from_props(&props), Some(8192));
        assert_eq!(window_from_props(&json!({"n_ctx": 2048})), Some(2048));
        assert_eq!(window_from_props(&json!({"default_generation_settings": {}})), None);
        let models = json!({"data": [{"id": "a", "max_model_len": 32768}, {"id": "b", "meta": {"n_ctx_train": 4096}}]});
        assert_eq!(window_from_models(&models, "a"), Some(32768));
        assert_eq!(window_from_models(&models, "b"), Some(4096));
        assert_eq!(window_from_models(&models, "c"), None, "two models, none named: unknown");
        let show = json!({"parameters": "stop \"<|im_end|>\"\nnum_ctx 16384", "model_info": {"qwen2.context_length": 32768}});
        assert_eq!(window_from_ollama_show(&show), Some(16384));
        let show =
            json!({"model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768}});
        assert_eq!(window_from_ollama_show(&show), Some(32768));
        assert_eq!(tokens_from_tokenize(&json!({"tokens": [1, 2, 3]})), Some(3));
        assert_eq!(tokens_from_tokenize(&json!({"error": "x"})), None);
    }
}
