//! A review's answer as a person reads it while it streams: the verdict and each finding as
//! soon as its JSON object is complete, the reviewer's prose line by line — each thing once,
//! so a small model repeating the same object does not flood the screen.

use std::collections::HashSet;

use serde_json::Value;

use super::{Finding, FindingSeverity, Verdict, VerdictStatus, finding, from_json};

/// Longest JSON object followed (a runaway object is dropped, not buffered forever).
const MAX_OBJECT: usize = 256 * 1024;
/// Longest prose line kept; longer ones are shown cut.
const MAX_LINE: usize = 2000;

/// Reads a review's chunks and returns the lines to show; see the module docs.
#[derive(Debug, Default)]
pub struct ReviewStream {
    started: bool,
    /// The current outermost object's text, from its `{`.
    object: String,
    /// Offsets in `object` of the `{` still open.
    opens: Vec<usize>,
    in_str: bool,
    escaped: bool,
    /// The current prose line (outside objects).
    line: String,
    /// Inside a `<think>` block (not shown).
    thinking: bool,
    /// What was shown (findings by message, verdicts and prose by text).
    seen: HashSet<String>,
}

/// A verdict's headline: "verdict: changes requested — the summary".
pub fn verdict_line(verdict: &Verdict) -> String {
    let status = match verdict.status {
        VerdictStatus::Approved => "approved",
        VerdictStatus::ChangesRequested => "changes requested",
    };
    match &verdict.summary {
        Some(s) => format!("verdict: {status} — {s}"),
        None => format!("verdict: {status}"),
    }
}

/// A finding as one line: `- [error] handle empty input`.
pub fn finding_line(f: &Finding) -> String {
    let sev = match f.severity {
        FindingSeverity::Error => "error",
        FindingSeverity::Warning => "warning",
        FindingSeverity::Suggestion => "suggestion",
    };
    format!("- [{sev}] {}", f.message)
}

impl ReviewStream {
    /// A reader for a new review.
    pub fn new() -> ReviewStream {
        ReviewStream::default()
    }

    /// Read the next chunk of the answer; the lines that became readable.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.started && !chunk.trim().is_empty() {
            self.started = true;
            out.push("reviewing…".to_string());
        }
        for c in chunk.chars() {
            if self.opens.is_empty() {
                self.prose(c, &mut out);
            } else {
                self.in_object(c, &mut out);
            }
        }
        out
    }

    /// The answer ended: what is left of the last line.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.end_line(&mut out);
        self.object.clear();
        self.opens.clear();
        out
    }

    fn prose(&mut self, c: char, out: &mut Vec<String>) {
        match c {
            '{' if !self.thinking => {
                self.object.clear();
                self.object.push(c);
                self.opens.push(0);
                self.in_str = false;
                self.escaped = false;
            }
            '\n' => self.end_line(out),
            _ if self.line.len() >= MAX_LINE => {}
            _ => self.line.push(c),
        }
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        let text = line.trim();
        for tag in ["<think>", "<thinking>", "<reasoning>"] {
            if text.contains(tag) {
                self.thinking = true;
            }
        }
        let closes = ["</think>", "</thinking>", "</reasoning>"].iter().any(|t| text.contains(t));
        if self.thinking {
            self.thinking = !closes;
            return;
        }
        // Fences (```json) and their language tags carry nothing to read.
        if text.is_empty() || text.starts_with("```") {
            return;
        }
        self.show(text.to_string(), text.to_string(), out);
    }

    fn in_object(&mut self, c: char, out: &mut Vec<String>) {
        self.object.push(c);
        if self.in_str {
            match (self.escaped, c) {
                (true, _) => self.escaped = false,
                (false, '\\') => self.escaped = true,
                (false, '"') => self.in_str = false,
                _ => {}
            }
        } else {
            match c {
                '"' => self.in_str = true,
                '{' => self.opens.push(self.object.len() - 1),
                '}' => {
                    if let Some(start) = self.opens.pop()
                        && let Ok(v) = serde_json::from_str::<Value>(&self.object[start..])
                    {
                        self.object_done(&v, out);
                    }
                    if self.opens.is_empty() {
                        self.object.clear();
                    }
                }
                _ => {}
            }
        }
        if self.object.len() > MAX_OBJECT {
            self.object.clear();
            self.opens.clear();
        }
    }

    fn object_done(&mut self, v: &Value, out: &mut Vec<String>) {
        if let Some(verdict) = from_json(v) {
            let line = verdict_line(&verdict);
            self.show(line.clone(), line, out);
            for f in &verdict.findings {
                self.show(f.message.clone(), finding_line(f), out);
            }
        } else if let Some(f) = finding(v, FindingSeverity::Warning) {
            self.show(f.message.clone(), finding_line(&f), out);
        }
    }

    /// Show `line` unless what it says (`key`) was shown already.
    fn show(&mut self, key: String, line: String, out: &mut Vec<String>) {
        if self.seen.insert(key) {
            out.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_in_pieces(text: &str, size: usize) -> Vec<String> {
        let mut s = ReviewStream::new();
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for piece in chars.chunks(size) {
            out.extend(s.push(&piece.iter().collect::<String>()));
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn a_streamed_review_reads_as_its_verdict_and_findings() {
        let answer = "Looking at the change.\n```json\n{\"verdict\": \"changes_requested\", \"summary\": \"almost\", \"findings\": [{\"severity\": \"error\", \"message\": \"handle empty input\"}, {\"severity\": \"suggestion\", \"message\": \"name it better\"}]}\n```\n";
        for size in [1, 3, 7, 1000] {
            let lines = stream_in_pieces(answer, size);
            assert_eq!(
                lines,
                [
                    "reviewing…",
                    "Looking at the change.",
                    "- [error] handle empty input",
                    "- [suggestion] name it better",
                    "verdict: changes requested — almost",
                ],
                "in pieces of {size}"
            );
        }
    }

    #[test]
    fn findings_show_as_soon_as_their_object_is_complete() {
        let mut s = ReviewStream::new();
        s.push("{\"verdict\": \"approved\", \"findings\": [{\"message\": \"a \\\"quoted\\\" }");
        let lines = s.push(" word\"}, {\"message\": ");
        assert_eq!(lines, ["- [warning] a \"quoted\" } word"], "before the verdict ends");
        let lines = s.push("\"b\"}]}");
        assert_eq!(lines, ["- [warning] b", "verdict: approved"]);
    }

    #[test]
    fn a_model_repeating_itself_shows_once() {
        let one = "{\"message\": \"the loop never ends\"}\nThe same again.\n";
        let lines = stream_in_pieces(&one.repeat(300), 5);
        assert_eq!(lines, ["reviewing…", "- [warning] the loop never ends", "The same again."]);
    }

    #[test]
    fn reasoning_and_fences_are_not_shown_and_prose_reviews_still_read() {
        let answer = "<think>\nlet me see {\"verdict\": \"approved\"}\n</think>\nLGTM, nice work.";
        let lines = stream_in_pieces(answer, 4);
        assert_eq!(lines, ["reviewing…", "LGTM, nice work."]);
        assert!(stream_in_pieces("   ", 1).is_empty(), "nothing to read, nothing shown");
    }
}
