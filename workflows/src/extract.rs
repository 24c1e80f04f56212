//! Getting structured answers out of model text: reasoning blocks stripped, JSON found in a
//! code fence or inside prose.

use serde_json::Value;

/// `text` without `<think>…</think>` (and `<thinking>…</thinking>`, `<reasoning>…</reasoning>`)
/// blocks. An unclosed block at the start hides everything up to its end, as models do when
/// they are cut off mid-thought.
pub fn strip_reasoning(text: &str) -> String {
    let mut out = text.to_string();
    for tag in ["think", "thinking", "reasoning"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        loop {
            let lower = out.to_ascii_lowercase();
            let Some(start) = lower.find(&open) else { break };
            match lower[start..].find(&close) {
                Some(rel) => out.replace_range(start..start + rel + close.len(), ""),
                None => {
                    out.truncate(start);
                    break;
                }
            }
        }
        // A close tag with no open one: the model's output began inside the block.
        let lower = out.to_ascii_lowercase();
        if let Some(end) = lower.find(&close) {
            out.replace_range(..end + close.len(), "");
        }
    }
    out.trim().to_string()
}

/// Every JSON object in `text`, best candidates first: the contents of fenced code blocks,
/// then balanced `{…}` spans in the prose, largest first.
pub fn json_objects(text: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for block in fenced_blocks(text) {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(block.trim()) {
            found.push(v);
        } else {
            // A fence may hold prose around the object.
            for span in brace_spans(block) {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(span) {
                    found.push(v);
                }
            }
        }
    }
    let mut spans = brace_spans(text);
    spans.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for span in spans {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(span)
            && !found.contains(&v)
        {
            found.push(v);
        }
    }
    found
}

/// The contents of ``` fenced blocks (any language tag).
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        // Skip the language tag line.
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let body = &after[body_start..];
        let Some(end) = body.find("```") else {
            blocks.push(body);
            break;
        };
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    blocks
}

/// Top-level balanced `{…}` spans, respecting JSON strings.
fn brace_spans(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        let mut end = None;
        for (j, &b) in bytes.iter().enumerate().skip(i) {
            if in_str {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        match end {
            Some(e) => {
                spans.push(&text[i..=e]);
                i = e + 1;
            }
            None => i += 1,
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_blocks_are_removed() {
        assert_eq!(strip_reasoning("<think>hmm {\"a\":1}</think>answer"), "answer");
        assert_eq!(strip_reasoning("a<THINK>x</THINK>b<think>y</think>c"), "abc");
        assert_eq!(strip_reasoning("keep<think>cut off mid-thought"), "keep");
        assert_eq!(strip_reasoning("started inside</think> the answer"), "the answer");
        assert_eq!(strip_reasoning("<thinking>x</thinking>y"), "y");
        assert_eq!(strip_reasoning("plain"), "plain");
    }

    #[test]
    fn json_is_found_in_fences_and_prose() {
        let v = json_objects("Here:\n```json\n{\"a\": 1}\n```\nthanks");
        assert_eq!(v[0]["a"], 1);
        let v = json_objects("I think {\"verdict\": \"approved\", \"x\": \"}{\"} is it.");
        assert_eq!(v[0]["verdict"], "approved");
        assert_eq!(v[0]["x"], "}{");
        let v = json_objects("```\nsure, {\"b\": [1, {\"c\": 2}]} ok\n```");
        assert_eq!(v[0]["b"][1]["c"], 2);
        assert!(json_objects("no json {here").is_empty());
        // An unterminated fence still yields its object.
        let v = json_objects("```json\n{\"a\": 2}");
        assert_eq!(v[0]["a"], 2);
    }
}
