//! Review verdicts, parsed robustly from whatever a model wrote.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{json_objects, strip_reasoning};

pub mod stream;

/// What the reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum VerdictStatus {
    /// The work is good.
    Approved,
    /// The work needs changes.
    ChangesRequested,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum FindingSeverity {
    /// Nice to have.
    Suggestion,
    /// Should be fixed.
    Warning,
    /// Must be fixed.
    Error,
}

/// One thing the reviewer pointed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// How serious it is.
    pub severity: FindingSeverity,
    /// What kind of thing it is (`bug`, `mistake`, `decision`, `pattern`, `style`, …), when said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// How a verdict was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum VerdictSource {
    /// From a JSON object in the answer.
    Json,
    /// From keywords (APPROVED, LGTM, CHANGES REQUESTED, …) in prose.
    Keywords,
    /// Nothing recognisable: treated as changes requested.
    Unparsed,
}

/// A parsed review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Approved or changes requested.
    pub status: VerdictStatus,
    /// The reviewer's one-line summary, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// What the reviewer pointed out.
    pub findings: Vec<Finding>,
    /// How it was read.
    pub source: VerdictSource,
}

impl Verdict {
    /// Whether the review lets the workflow stop: approved with no errors, or changes
    /// requested with nothing but one to `max_suggestions` suggestions (a rejection that
    /// names nothing does not pass).
    pub fn passes(&self, max_suggestions: usize) -> bool {
        let errors = self.findings.iter().any(|f| f.severity == FindingSeverity::Error);
        let warnings = self.findings.iter().any(|f| f.severity == FindingSeverity::Warning);
        match self.status {
            VerdictStatus::Approved => !errors,
            VerdictStatus::ChangesRequested => {
                self.source != VerdictSource::Unparsed
                    && !errors
                    && !warnings
                    && !self.findings.is_empty()
                    && self.findings.len() <= max_suggestions
            }
        }
    }

    /// The findings as a bulleted list for the next prompt.
    pub fn findings_text(&self) -> String {
        let mut out = String::new();
        if let Some(s) = &self.summary {
            out.push_str(s);
            out.push('\n');
        }
        for f in &self.findings {
            let sev = match f.severity {
                FindingSeverity::Error => "error",
                FindingSeverity::Warning => "warning",
                FindingSeverity::Suggestion => "suggestion",
            };
            out.push_str(&format!("- [{sev}] {}\n", f.message));
        }
        out.trim_end().to_string()
    }
}

/// Read a review from model output: JSON in a code fence or in prose first (after stripping
/// `<think>` blocks), then keywords, else [`VerdictSource::Unparsed`] (changes requested).
pub fn parse_verdict(text: &str) -> Verdict {
    let clean = strip_reasoning(text);
    for obj in json_objects(&clean) {
        if let Some(v) = from_json(&obj) {
            return v;
        }
    }
    from_keywords(&clean)
}

fn from_json(obj: &Value) -> Option<Verdict> {
    let map = obj.as_object()?;
    let status = ["verdict", "status", "decision", "result", "review"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str).and_then(status_word))
        .or_else(|| {
            ["approved", "approve", "pass", "passed", "lgtm"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_bool))
                .map(|b| if b { VerdictStatus::Approved } else { VerdictStatus::ChangesRequested })
        })?;
    let summary = ["summary", "comment", "overall"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let default_sev = match status {
        VerdictStatus::Approved => FindingSeverity::Suggestion,
        VerdictStatus::ChangesRequested => FindingSeverity::Warning,
    };
    let mut findings = Vec::new();
    for key in ["findings", "issues", "problems", "comments", "changes", "suggestions"] {
        let Some(items) = map.get(key).and_then(Value::as_array) else { continue };
        let key_sev = if key == "suggestions" { FindingSeverity::Suggestion } else { default_sev };
        for item in items {
            if let Some(f) = finding(item, key_sev) {
                findings.push(f);
            }
        }
    }
    Some(Verdict { status, summary, findings, source: VerdictSource::Json })
}

fn finding(item: &Value, default: FindingSeverity) -> Option<Finding> {
    match item {
        Value::String(s) if !s.trim().is_empty() => {
            Some(Finding { severity: default, kind: None, message: s.trim().to_string() })
        }
        Value::Object(m) => {
            let message = ["message", "description", "issue", "text", "detail", "comment"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))?
                .trim()
                .to_string();
            if message.is_empty() {
                return None;
            }
            let severity = ["severity", "level", "priority"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))
                .and_then(severity_word)
                .unwrap_or(default);
            let kind = ["kind", "type", "category"]
                .iter()
                .find_map(|k| m.get(*k).and_then(Value::as_str))
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty());
            Some(Finding { severity, kind, message })
        }
        _ => None,
    }
}

fn normalise(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

fn status_word(word: &str) -> Option<VerdictStatus> {
    match normalise(word).as_str() {
        "approved" | "approve" | "accept" | "accepted" | "pass" | "passed" | "lgtm" | "ok"
        | "good" => Some(VerdictStatus::Approved),
        "changes_requested" | "request_changes" | "changes_required" | "changes" | "reject"
        | "rejected" | "needs_work" | "needs_changes" | "fail" | "failed" | "revise" => {
            Some(VerdictStatus::ChangesRequested)
        }
        _ => None,
    }
}

fn severity_word(word: &str) -> Option<FindingSeverity> {
    match normalise(word).as_str() {
        "error" | "critical" | "blocker" | "major" | "high" | "bug" | "must" => {
            Some(FindingSeverity::Error)
        }
        "warning" | "warn" | "medium" | "minor" | "should" => Some(FindingSeverity::Warning),
        "suggestion" | "nit" | "info" | "low" | "optional" | "note" | "could" => {
            Some(FindingSeverity::Suggestion)
        }
        _ => None,
    }
}

fn from_keywords(text: &str) -> Verdict {
    let upper = text.to_ascii_uppercase();
    let negative = [
        "NOT APPROVED",
        "CHANGES REQUESTED",
        "REQUEST CHANGES",
        "CHANGES_REQUESTED",
        "NEEDS WORK",
        "REJECTED",
    ];
    let positive = ["APPROVED", "LGTM", "LOOKS GOOD TO ME"];
    // The earliest decisive keyword wins; a negative phrase containing a positive word
    // ("NOT APPROVED") is checked first at the same position.
    let first = |words: &[&str]| words.iter().filter_map(|w| upper.find(w)).min();
    let (neg, pos) = (first(&negative), first(&positive));
    let status = match (neg, pos) {
        (Some(n), Some(p)) if n <= p || upper[..p].ends_with("NOT ") => {
            Some(VerdictStatus::ChangesRequested)
        }
        (Some(_), Some(_)) | (None, Some(_)) => Some(VerdictStatus::Approved),
        (Some(_), None) => Some(VerdictStatus::ChangesRequested),
        (None, None) => None,
    };
    let findings: Vec<Finding> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- ").or_else(|| l.strip_prefix("* ")))
        .filter(|l| !l.is_empty())
        .map(|l| Finding {
            severity: match status {
                Some(VerdictStatus::Approved) => FindingSeverity::Suggestion,
                _ => FindingSeverity::Warning,
            },
            kind: None,
            message: l.to_string(),
        })
        .collect();
    match status {
        Some(status) => {
            Verdict { status, summary: None, findings, source: VerdictSource::Keywords }
        }
        None => Verdict {
            status: VerdictStatus::ChangesRequested,
            summary: Some("the review could not be read as a verdict".into()),
            findings,
            source: VerdictSource::Unparsed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FindingSeverity::*;
    use VerdictStatus::*;

    /// Real-looking reviewer outputs and what they must parse to:
    /// (text, status, source, number of findings, passes with max 3 suggestions).
    const CASES: &[(&str, VerdictStatus, VerdictSource, usize, bool)] = &[
        (
            "```json\n{\"verdict\": \"approved\", \"summary\": \"fine\", \"findings\": []}\n```",
            Approved,
            VerdictSource::Json,
            0,
            true,
        ),
        (
            "<think>The code reverses... is it \"approved\"? Let me check {\"verdict\": \"changes_requested\"}</think>\n```json\n{\"verdict\": \"APPROVED\", \"findings\": [{\"severity\": \"suggestion\", \"message\": \"add a doc comment\"}]}\n```",
            Approved,
            VerdictSource::Json,
            1,
            true,
        ),
        (
            "Overall the work is solid. {\"verdict\": \"changes_requested\", \"findings\": [{\"severity\": \"error\", \"kind\": \"bug\", \"message\": \"off by one in the loop\"}, \"handle empty input\"]} Please fix.",
            ChangesRequested,
            VerdictSource::Json,
            2,
            false,
        ),
        (
            "{\"approved\": false, \"issues\": [\"missing tests\"]}",
            ChangesRequested,
            VerdictSource::Json,
            1,
            false,
        ),
        (
            "{\"status\": \"request changes\", \"suggestions\": [\"rename x\", \"rename y\"]}",
            ChangesRequested,
            VerdictSource::Json,
            2,
            true,
        ),
        (
            "{\"verdict\": \"changes_requested\", \"findings\": [{\"severity\": \"nit\", \"message\": \"a\"}, {\"severity\": \"nit\", \"message\": \"b\"}, {\"severity\": \"nit\", \"message\": \"c\"}, {\"severity\": \"nit\", \"message\": \"d\"}]}",
            ChangesRequested,
            VerdictSource::Json,
            4,
            false,
        ),
        ("LGTM! Ship it.", Approved, VerdictSource::Keywords, 0, true),
        (
            "Verdict: CHANGES REQUESTED\n- the function panics on empty strings\n- no tests",
            ChangesRequested,
            VerdictSource::Keywords,
            2,
            false,
        ),
        ("This is NOT APPROVED yet.", ChangesRequested, VerdictSource::Keywords, 0, false),
        ("The reversal looks right.", ChangesRequested, VerdictSource::Unparsed, 0, false),
        ("<think>approved?</think>", ChangesRequested, VerdictSource::Unparsed, 0, false),
        (
            "```json\n{\"verdict\": \"approved\", \"findings\": [{\"severity\": \"critical\", \"message\": \"sql injection\"}]}\n```",
            Approved,
            VerdictSource::Json,
            1,
            false,
        ),
    ];

    #[test]
    fn a_table_of_real_looking_reviews() {
        for (i, (text, status, source, n, passes)) in CASES.iter().enumerate() {
            let v = parse_verdict(text);
            assert_eq!(v.status, *status, "case {i}: {v:?}");
            assert_eq!(v.source, *source, "case {i}: {v:?}");
            assert_eq!(v.findings.len(), *n, "case {i}: {v:?}");
            assert_eq!(v.passes(3), *passes, "case {i}: {v:?}");
        }
    }

    #[test]
    fn severities_and_kinds_are_normalised() {
        let v = parse_verdict(
            r#"{"verdict":"fail","findings":[{"level":"High","type":"Mistake","description":"x"},{"priority":"low","text":"y"},{"message":"z"}]}"#,
        );
        let sev: Vec<_> = v.findings.iter().map(|f| f.severity).collect();
        assert_eq!(sev, [Error, Suggestion, Warning]);
        assert_eq!(v.findings[0].kind.as_deref(), Some("mistake"));
    }

    #[test]
    fn findings_text_lists_everything() {
        let v = parse_verdict(
            r#"{"verdict":"changes_requested","summary":"S","findings":[{"severity":"error","message":"m1"},"m2"]}"#,
        );
        assert_eq!(v.findings_text(), "S\n- [error] m1\n- [warning] m2");
    }

    #[test]
    fn a_larger_limit_lets_more_suggestions_pass() {
        let v = parse_verdict(CASES[5].0);
        assert!(!v.passes(3));
        assert!(v.passes(4));
    }
}
