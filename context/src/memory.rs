//! The memory API the runtime calls: record tasks, decisions, mistakes, patterns and
//! conversation turns (linked with edges), and get the relevant part of it back as a
//! prompt block that fits a token budget.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Direction, EdgeType, NewNode, Node, NodeId, NodeType, ProjectId, Scope};
use crate::project::file_node_id;
use crate::search::{Recency, SearchQuery};
use crate::store::Store;
use crate::text::truncate_at_char;

/// A task that was run, and how it went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRecord {
    /// What was asked.
    pub task: String,
    /// What came of it (a summary of the final output, or the error).
    pub outcome: String,
    /// Whether it succeeded.
    pub success: bool,
    /// The agent that did the work.
    pub agent: Option<String>,
    /// The workflow it ran under.
    pub workflow: Option<String>,
    /// The run's id in the run store.
    pub run_id: Option<String>,
    /// Project-relative paths of files it touched: linked (`references`) to their file nodes
    /// when the project was scanned.
    pub files: Vec<String>,
    /// Labels.
    pub tags: Vec<String>,
}

/// A decision and why it was made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionRecord {
    /// One line.
    pub title: String,
    /// What was decided.
    pub decision: String,
    /// Why.
    pub rationale: String,
    /// What else was considered.
    pub alternatives: Vec<String>,
    /// The task it was made in (`part_of`).
    pub task: Option<NodeId>,
    /// An earlier decision it replaces (`supersedes`; the old one is then left out of
    /// [`Store::relevant_context`]).
    pub supersedes: Option<NodeId>,
}

/// Something that went wrong, how it was fixed, how to avoid it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MistakeRecord {
    /// One line.
    pub title: String,
    /// What happened.
    pub what_happened: String,
    /// How it was fixed.
    pub fix: String,
    /// How to keep it from happening again.
    pub prevention: String,
    /// The task in which it happened (`caused_by`).
    pub task: Option<NodeId>,
    /// The task that fixed it (`fixed_by`).
    pub fixed_by: Option<NodeId>,
}

/// A reusable way of doing something.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternRecord {
    /// One line.
    pub title: String,
    /// The pattern.
    pub description: String,
    /// An example (code or text).
    pub example: Option<String>,
    /// What it was learned from (`derived_from`).
    pub derived_from: Vec<NodeId>,
}

/// One turn of a conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnRecord {
    /// The conversation (session) it belongs to; turns of one conversation are chained
    /// with `follows` edges.
    pub conversation: String,
    /// Who spoke (`user`, `assistant`, an agent name).
    pub role: String,
    /// What was said.
    pub text: String,
    /// The task it was about (`part_of`).
    pub task: Option<NodeId>,
}

/// How tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCounting {
    /// The embedding model's WordPiece tokenizer, but never fewer than one token per 4
    /// bytes (what chat-model BPE tokenizers average on English).
    Tokenizer,
    /// No tokenizer: one token per 3 bytes, rounded up, which over-counts English and code
    /// for every common tokenizer.
    Estimate,
}

/// One node used in a context block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsedNode {
    /// Its id.
    pub id: NodeId,
    /// Its type.
    pub node_type: NodeType,
    /// Its title.
    pub title: String,
    /// Its search score.
    pub score: f64,
    /// Tokens its entry took.
    pub tokens: usize,
    /// Whether its text was cut to fit.
    pub truncated: bool,
}

/// What [`Store::relevant_context`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContextBlock {
    /// The block to put into a prompt (empty when nothing relevant is known).
    pub text: String,
    /// Tokens of `text`, counted as `counting` says; never more than `budget`.
    pub tokens: usize,
    /// The budget asked for.
    pub budget: usize,
    /// How tokens were counted.
    pub counting: TokenCounting,
    /// The nodes in the block, in order.
    pub used: Vec<UsedNode>,
    /// Relevant nodes left out (duplicates, superseded, or over budget).
    pub left_out: usize,
}

/// Candidates considered for a context block.
const CONTEXT_CANDIDATES: usize = 24;
/// An entry is cut to fit only when at least this many tokens are left.
const MIN_TRUNCATED_TOKENS: usize = 32;
/// Longest body shown per entry (bytes), before any budget cut.
const MAX_ENTRY_BODY: usize = 1200;

impl Store {
    /// Tokens in `text`: with the embedding tokenizer when the model is loaded, else a
    /// conservative estimate (see [`TokenCounting`]).
    pub fn count_tokens(&self, text: &str) -> (usize, TokenCounting) {
        let by_tokenizer = self.embedder().ok().and_then(|e| e.count_tokens(text));
        match by_tokenizer {
            Some(n) => (n.max(text.len().div_ceil(4)), TokenCounting::Tokenizer),
            None => (text.len().div_ceil(3), TokenCounting::Estimate),
        }
    }

    fn check_exists(&self, ids: &[&NodeId]) -> Result<()> {
        for id in ids {
            if self.get_node(id)?.is_none() {
                return Err(Error::not_found(format!("node {id}")));
            }
        }
        Ok(())
    }

    fn link_all(&self, from: &NodeId, edges: &[(EdgeType, &NodeId)]) -> Result<()> {
        for (edge_type, to) in edges {
            self.link(from, to, *edge_type, 1.0, serde_json::Value::Null)?;
        }
        Ok(())
    }

    /// Record a task and its outcome; links it to the files it touched.
    pub fn store_task(&self, project: &ProjectId, task: &TaskRecord) -> Result<NodeId> {
        let title = one_line(&task.task);
        let verdict = if task.success { "succeeded" } else { "failed" };
        let mut body =
            format!("Task: {}\nOutcome ({verdict}): {}", task.task.trim(), task.outcome.trim());
        if let Some(agent) = &task.agent {
            body.push_str(&format!("\nAgent: {agent}"));
        }
        let mut tags = task.tags.clone();
        tags.push(if task.success { "success".into() } else { "failure".into() });
        let metadata = serde_json::json!({
            "success": task.success,
            "agent": task.agent,
            "workflow": task.workflow,
            "run_id": task.run_id,
            "files": task.files,
        });
        let node = self.upsert_node(
            NewNode::new(project, NodeType::Task, title, body)
                .with_tags(tags)
                .with_metadata(metadata),
        )?;
        for path in &task.files {
            let file = file_node_id(project, path.trim_start_matches("./"));
            if self.get_node(&file)?.is_some() {
                self.link(&node.id, &file, EdgeType::References, 1.0, serde_json::Value::Null)?;
            }
        }
        Ok(node.id)
    }

    /// Record a decision with its rationale.
    pub fn store_decision(&self, project: &ProjectId, d: &DecisionRecord) -> Result<NodeId> {
        let refs: Vec<&NodeId> = d.task.iter().chain(d.supersedes.iter()).collect();
        self.check_exists(&refs)?;
        let mut body =
            format!("Decision: {}\nRationale: {}", d.decision.trim(), d.rationale.trim());
        if !d.alternatives.is_empty() {
            body.push_str(&format!("\nAlternatives considered: {}", d.alternatives.join("; ")));
        }
        let metadata = serde_json::json!({ "alternatives": d.alternatives });
        let node = self.upsert_node(
            NewNode::new(project, NodeType::Decision, title_or(&d.title, &d.decision), body)
                .with_metadata(metadata),
        )?;
        let mut edges = Vec::new();
        if let Some(t) = &d.task {
            edges.push((EdgeType::PartOf, t));
        }
        if let Some(old) = &d.supersedes {
            edges.push((EdgeType::Supersedes, old));
        }
        self.link_all(&node.id, &edges)?;
        Ok(node.id)
    }

    /// Record a mistake with its fix and how to prevent it.
    pub fn store_mistake(&self, project: &ProjectId, m: &MistakeRecord) -> Result<NodeId> {
        let refs: Vec<&NodeId> = m.task.iter().chain(m.fixed_by.iter()).collect();
        self.check_exists(&refs)?;
        let body = format!(
            "What happened: {}\nFix: {}\nPrevention: {}",
            m.what_happened.trim(),
            m.fix.trim(),
            m.prevention.trim()
        );
        let node = self.upsert_node(NewNode::new(
            project,
            NodeType::Mistake,
            title_or(&m.title, &m.what_happened),
            body,
        ))?;
        let mut edges = Vec::new();
        if let Some(t) = &m.task {
            edges.push((EdgeType::CausedBy, t));
        }
        if let Some(t) = &m.fixed_by {
            edges.push((EdgeType::FixedBy, t));
        }
        self.link_all(&node.id, &edges)?;
        Ok(node.id)
    }

    /// Record a pattern.
    pub fn store_pattern(&self, project: &ProjectId, p: &PatternRecord) -> Result<NodeId> {
        let refs: Vec<&NodeId> = p.derived_from.iter().collect();
        self.check_exists(&refs)?;
        let mut body = p.description.trim().to_string();
        if let Some(example) = &p.example {
            body.push_str(&format!("\nExample:\n{}", example.trim()));
        }
        let node = self.upsert_node(NewNode::new(
            project,
            NodeType::Pattern,
            title_or(&p.title, &p.description),
            body,
        ))?;
        let edges: Vec<(EdgeType, &NodeId)> =
            p.derived_from.iter().map(|id| (EdgeType::DerivedFrom, id)).collect();
        self.link_all(&node.id, &edges)?;
        Ok(node.id)
    }

    /// Record a conversation turn; it `follows` the previous turn of the same conversation.
    pub fn store_conversation_turn(
        &self,
        project: &ProjectId,
        turn: &TurnRecord,
    ) -> Result<NodeId> {
        if turn.conversation.trim().is_empty() {
            return Err(Error::InvalidInput("a conversation turn needs a conversation id".into()));
        }
        if let Some(t) = &turn.task {
            self.check_exists(&[t])?;
        }
        let key = format!("conversation/{}/{}", project, turn.conversation);
        let previous = self
            .graph()
            .meta
            .get(&key)?
            .map(|v| NodeId::from_trusted(String::from_utf8_lossy(&v).into_owned()))
            .filter(|id| self.get_node(id).ok().flatten().is_some());
        let title = format!("{}: {}", turn.role, one_line(&turn.text));
        let metadata = serde_json::json!({ "conversation": turn.conversation, "role": turn.role });
        let node = self.upsert_node(
            NewNode::new(project, NodeType::Conversation, title, turn.text.clone())
                .with_tags([turn.role.clone()])
                .with_metadata(metadata),
        )?;
        self.graph().meta.insert(key, node.id.as_str().as_bytes())?;
        self.flush()?;
        let mut edges = Vec::new();
        if let Some(prev) = &previous {
            edges.push((EdgeType::Follows, prev));
        }
        if let Some(t) = &turn.task {
            edges.push((EdgeType::PartOf, t));
        }
        self.link_all(&node.id, &edges)?;
        Ok(node.id)
    }

    /// The memory relevant to `task_text` in `project`, as a formatted block of at most
    /// `token_budget` tokens: ranked by hybrid search (with mild recency weighting and
    /// graph expansion), without duplicates or superseded decisions; says which nodes it
    /// used.
    pub fn relevant_context(
        &self,
        project: &ProjectId,
        task_text: &str,
        token_budget: usize,
    ) -> Result<ContextBlock> {
        let query = SearchQuery::new(task_text, Scope::Project(project.clone()))
            .limit(CONTEXT_CANDIDATES)
            .recency(Recency { half_life_days: 30.0, weight: 0.2 });
        let results = self.search(&query)?;
        let (_, counting) = self.count_tokens("");
        let mut block = ContextBlock {
            text: String::new(),
            tokens: 0,
            budget: token_budget,
            counting,
            used: Vec::new(),
            left_out: 0,
        };
        let candidates: Vec<_> =
            results.hits.into_iter().filter(|h| h.node.node_type != NodeType::Project).collect();
        if candidates.is_empty() || token_budget == 0 {
            block.left_out = candidates.len();
            return Ok(block);
        }
        let header = match self.project(project)? {
            Some(p) => format!("# Project memory: {}\n\n", p.name),
            None => "# Project memory\n\n".to_string(),
        };
        let (header_tokens, _) = self.count_tokens(&header);
        if header_tokens >= token_budget {
            block.left_out = candidates.len();
            return Ok(block);
        }
        let mut entries: Vec<String> = Vec::new();
        let mut used_tokens = header_tokens;
        let mut seen: HashSet<String> = HashSet::new();
        for hit in candidates {
            let node = &hit.node;
            let fingerprint = fingerprint(node);
            if !seen.insert(fingerprint) || self.is_superseded(&node.id)? {
                block.left_out += 1;
                continue;
            }
            let remaining = token_budget - used_tokens;
            let entry = format_entry(node, None);
            let (tokens, _) = self.count_tokens(&entry);
            let (entry, tokens, truncated) = if tokens <= remaining {
                (entry, tokens, false)
            } else if remaining >= MIN_TRUNCATED_TOKENS {
                match self.fit_entry(node, remaining) {
                    Some((e, t)) => (e, t, true),
                    None => {
                        block.left_out += 1;
                        continue;
                    }
                }
            } else {
                block.left_out += 1;
                continue;
            };
            used_tokens += tokens;
            entries.push(entry);
            block.used.push(UsedNode {
                id: node.id.clone(),
                node_type: node.node_type,
                title: node.title.clone(),
                score: hit.score,
                tokens,
                truncated,
            });
        }
        if block.used.is_empty() {
            return Ok(block);
        }
        // The sum of the parts bounds the whole for both counters; check the whole anyway
        // and drop entries from the end should it ever exceed the budget.
        let mut text = format!("{header}{}", entries.concat());
        let (mut total, _) = self.count_tokens(&text);
        while total > token_budget && !entries.is_empty() {
            entries.pop();
            block.used.pop();
            block.left_out += 1;
            text = format!("{header}{}", entries.concat());
            (total, _) = self.count_tokens(&text);
        }
        if entries.is_empty() {
            return Ok(block);
        }
        block.tokens = total;
        block.text = text;
        Ok(block)
    }

    /// The longest version of `node`'s entry with a cut body that fits `max_tokens`.
    fn fit_entry(&self, node: &Node, max_tokens: usize) -> Option<(String, usize)> {
        let body_len = node.body.len().min(MAX_ENTRY_BODY);
        let (mut lo, mut hi) = (0usize, body_len);
        let mut best = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let entry = format_entry(node, Some(mid));
            let (t, _) = self.count_tokens(&entry);
            if t <= max_tokens {
                best = Some((entry, t));
                lo = mid + 1;
            } else if mid == 0 {
                break;
            } else {
                hi = mid - 1;
            }
        }
        best
    }

    fn is_superseded(&self, id: &NodeId) -> Result<bool> {
        Ok(!self.edges(id, Direction::Incoming, Some(EdgeType::Supersedes))?.is_empty())
    }
}

/// One entry: `## type: title (id)` and the body, cut to `body_bytes` when given.
fn format_entry(node: &Node, body_bytes: Option<usize>) -> String {
    let mut body = node.body.trim().to_string();
    let limit = body_bytes.unwrap_or(MAX_ENTRY_BODY).min(MAX_ENTRY_BODY);
    let cut = body.len() > limit;
    truncate_at_char(&mut body, limit);
    let mut entry = format!("## {}: {} (id {})\n", node.node_type, one_line(&node.title), node.id);
    if !body.is_empty() {
        entry.push_str(body.trim_end());
        if cut {
            entry.push_str(" …");
        }
        entry.push('\n');
    }
    entry.push('\n');
    entry
}

/// Same title and same start of body = the same memory stored twice.
fn fingerprint(node: &Node) -> String {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut body = norm(&node.body);
    truncate_at_char(&mut body, 300);
    format!("{}\u{1}{}", norm(&node.title), body)
}

fn one_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut s = line.to_string();
    if s.len() > 120 {
        truncate_at_char(&mut s, 117);
        s.push('…');
    }
    s
}

fn title_or(title: &str, fallback: &str) -> String {
    if title.trim().is_empty() { one_line(fallback) } else { title.trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_takes_the_first_non_empty_line_and_caps_it() {
        assert_eq!(one_line("\n  first \nsecond"), "first");
        assert!(one_line(&"x".repeat(300)).ends_with('…'));
        assert_eq!(title_or(" ", "fallback text"), "fallback text");
    }
}
