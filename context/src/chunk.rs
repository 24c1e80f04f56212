//! Passages: what the embedding model reads of a node.
//!
//! all-MiniLM-L6-v2 reads 256 word pieces, `[CLS]` and `[SEP]` included; fastembed cuts
//! anything longer (its tokenizer truncates at `min(max_length, model_max_length)` =
//! [`crate::MAX_MODEL_TOKENS`], longest-first, no stride), so one vector of a long file
//! describes its first page only. A node's text (a file's whole content, another node's
//! body) is therefore split into overlapping windows of word pieces that fit the model
//! with the node's title and tags in front of each, and each window gets its own vector. A
//! node's vector score is its best passage's, and that passage is the snippet shown.

use serde::Serialize;

use crate::embed::{Embedder, MAX_MODEL_TOKENS};
use crate::error::{Error, Result};

/// Word pieces shared by consecutive passages, so that a sentence cut by a window's end is
/// whole in the next one.
pub(crate) const OVERLAP_TOKENS: usize = 48;
/// Passages embedded per node at most (64 windows ≈ 13k word pieces ≈ 50 KB of prose): the
/// rest of a longer file is searched by BM25 only.
pub(crate) const MAX_PASSAGES: usize = 64;
/// Word pieces the title and tags may take in front of every passage.
const MAX_PREFIX_TOKENS: usize = 48;
/// Room left for the special tokens and for a word piece or two that tokenizing the
/// prefix and the passage together may add at the seam.
const RESERVED_TOKENS: usize = 4;
/// Longest summary passage (bytes): the model reads ~256 word pieces of it anyway.
const SUMMARY_BYTES: usize = 1600;
/// Longest title and tags text (bytes) put in front of a passage.
const MAX_PREFIX_BYTES: usize = 240;

/// Where a passage lies in its node's text (byte offsets, at character boundaries). A
/// file's summary (its node body) is a passage too: [`Passage::SUMMARY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Passage {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Passage {
    /// The empty span that stands for a file's summary.
    pub const SUMMARY: Passage = Passage { start: 0, end: 0 };

    /// Whether this is a file's summary rather than a span of its content.
    pub fn is_summary(&self) -> bool {
        self.start == self.end
    }
}

/// A node's passages and the texts to embed for them (title and tags, newline, passage).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Passages {
    pub spans: Vec<Passage>,
    pub texts: Vec<String>,
}

/// The title-and-tags line put in front of every passage.
pub(crate) fn prefix(title: &str, tags: &[String]) -> String {
    let mut s = String::with_capacity(title.len() + 16);
    s.push_str(title.trim());
    if !tags.is_empty() {
        s.push_str(" [");
        s.push_str(&tags.join(", "));
        s.push(']');
    }
    crate::text::truncate_at_char(&mut s, MAX_PREFIX_BYTES);
    s
}

/// Word-piece spans of `text` (byte offsets) under the embedder's tokenizer, or one span
/// per word, scaled to word pieces, when it has none.
fn token_spans(embedder: &dyn Embedder, text: &str) -> (Vec<(usize, usize)>, f64) {
    if let Some(mut spans) = embedder.token_spans(text) {
        // Byte offsets that do not fall on characters of `text` cannot cut it.
        spans.retain(|&(a, b)| {
            a <= b && b <= text.len() && text.is_char_boundary(a) && text.is_char_boundary(b)
        });
        return (spans, 1.0);
    }
    // No tokenizer: English averages ~1.3 word pieces per word.
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    (spans, 1.3)
}

/// Split `text` into the passages of a node titled `title` with `tags`, each fitting the
/// model's window with the prefix in front. Empty text gives one empty passage (the
/// prefix alone is embedded).
pub(crate) fn passages(
    embedder: &dyn Embedder,
    title: &str,
    tags: &[String],
    text: &str,
) -> Passages {
    let prefix = prefix(title, tags);
    let prefix_tokens = embedder
        .count_tokens(&prefix)
        .unwrap_or_else(|| prefix.split_whitespace().count() * 4 / 3 + 1)
        .min(MAX_PREFIX_TOKENS);
    let window = MAX_MODEL_TOKENS - RESERVED_TOKENS - prefix_tokens;
    let (tokens, pieces_per_token) = token_spans(embedder, text);
    let window = ((window as f64 / pieces_per_token) as usize).max(8);
    let overlap = ((OVERLAP_TOKENS as f64 / pieces_per_token) as usize).min(window / 2);
    let spans = windows(text, &tokens, window, overlap, MAX_PASSAGES);
    let texts = spans
        .iter()
        .map(|p| {
            let body = text[p.start..p.end].trim();
            if body.is_empty() { prefix.clone() } else { format!("{prefix}\n{body}") }
        })
        .collect();
    Passages { spans, texts }
}

/// One node as the embedder sees it: title, tags, the text cut into passages, and (a
/// file) its summary, embedded as one more passage.
pub(crate) struct PassageSource<'a> {
    pub title: &'a str,
    pub tags: &'a [String],
    pub text: &'a str,
    pub summary: Option<&'a str>,
}

/// A node's passages and their vectors.
pub(crate) type Embedded = (Vec<Passage>, Vec<Vec<f32>>);

/// Cut every node into passages and embed them all in one call (the embedder batches
/// texts of similar length together). Returns, per node, its passages and their vectors.
pub(crate) fn embed_passages(
    embedder: &dyn Embedder,
    nodes: &[PassageSource<'_>],
) -> Result<Vec<Embedded>> {
    let cut: Vec<Passages> = nodes
        .iter()
        .map(|n| {
            let mut p = passages(embedder, n.title, n.tags, n.text);
            // A file's summary (its header comment, the names it defines, its first lines)
            // is a compact description of it: one more passage, with an empty span.
            if let Some(summary) = n.summary.filter(|s| !s.trim().is_empty()) {
                let mut text = format!("{}\n{}", prefix(n.title, n.tags), summary.trim());
                crate::text::truncate_at_char(&mut text, SUMMARY_BYTES);
                p.spans.insert(0, Passage::SUMMARY);
                p.texts.insert(0, text);
            }
            p
        })
        .collect();
    let texts: Vec<&str> = cut.iter().flat_map(|p| p.texts.iter().map(String::as_str)).collect();
    let mut vectors = embedder.embed(&texts)?.into_iter();
    if vectors.len() != texts.len() {
        return Err(Error::Embedding(format!(
            "{} vectors for {} passages",
            vectors.len(),
            texts.len()
        )));
    }
    Ok(cut
        .into_iter()
        .map(|p| {
            let v: Vec<Vec<f32>> = vectors.by_ref().take(p.spans.len()).collect();
            (p.spans, v)
        })
        .collect())
}

/// Windows of `window` tokens overlapping by `overlap`, at most `max` of them; a window
/// after the first starts at the beginning of a word (a word piece that continues a word is
/// skipped, a few at most).
pub(crate) fn windows(
    text: &str,
    tokens: &[(usize, usize)],
    window: usize,
    overlap: usize,
    max: usize,
) -> Vec<Passage> {
    let window = window.max(1);
    let overlap = overlap.min(window - 1);
    if tokens.len() <= window {
        return vec![Passage { start: 0, end: text.len() }];
    }
    let continues = |i: usize| {
        i > 0
            && tokens[i].0 == tokens[i - 1].1
            && text[..tokens[i].0].chars().next_back().is_some_and(char::is_alphanumeric)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < max {
        let end = (i + window).min(tokens.len());
        let start_byte = if i == 0 { 0 } else { tokens[i].0 };
        let end_byte = if end == tokens.len() { text.len() } else { tokens[end - 1].1 };
        out.push(Passage { start: start_byte, end: end_byte });
        if end == tokens.len() {
            break;
        }
        let mut next = end - overlap;
        let limit = (next + 8).min(end - 1);
        while next < limit && continues(next) {
            next += 1;
        }
        i = next.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::HashEmbedder;

    fn words(n: usize) -> String {
        (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
    }

    fn spans_of(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for w in text.split(' ') {
            out.push((pos, pos + w.len()));
            pos += w.len() + 1;
        }
        out
    }

    #[test]
    fn a_short_text_is_one_passage_covering_all_of_it() {
        let text = words(10);
        let p = windows(&text, &spans_of(&text), 20, 5, 64);
        assert_eq!(p, vec![Passage { start: 0, end: text.len() }]);
    }

    #[test]
    fn long_text_is_split_into_overlapping_windows_that_cover_everything() {
        let text = words(100);
        let tokens = spans_of(&text);
        let p = windows(&text, &tokens, 30, 10, 64);
        // 0..30, 20..50, 40..70, 60..90, 80..100
        assert_eq!(p.len(), 5);
        assert_eq!(p[0].start, 0);
        assert_eq!(p.last().unwrap().end, text.len());
        for pair in p.windows(2) {
            // Each window starts before the previous one ends (the overlap) …
            assert!(pair[1].start < pair[0].end, "{pair:?}");
            // … by exactly ten words here.
            let shared = &text[pair[1].start..pair[0].end];
            assert_eq!(shared.split_whitespace().count(), 10, "{shared:?}");
        }
        for s in &p {
            assert!(text[s.start..s.end].split_whitespace().count() <= 30);
        }
        // The cap on passages holds.
        assert_eq!(windows(&text, &tokens, 30, 10, 2).len(), 2);
    }

    #[test]
    fn a_window_does_not_start_inside_a_word() {
        // "abcdef" as three word pieces "ab" "##cd" "##ef", then words.
        let text = "x y abcdef z w v u";
        let tokens =
            vec![(0, 1), (2, 3), (4, 6), (6, 8), (8, 10), (11, 12), (13, 14), (15, 16), (17, 18)];
        // Window 4, overlap 2: the second window would start at token 2 ("ab"), fine; the
        // third at token 4 ("##ef"), which continues a word: it moves to "z".
        let p = windows(text, &tokens, 4, 2, 64);
        for s in &p[1..] {
            let before = text[..s.start].chars().next_back();
            assert!(
                before.is_none_or(|c| !c.is_alphanumeric()),
                "{:?} starts mid-word",
                &text[s.start..s.end]
            );
        }
        assert_eq!(p.last().unwrap().end, text.len());
    }

    #[test]
    fn passages_carry_the_title_and_fit_the_model() {
        let e = HashEmbedder::new(16);
        let text = words(1000);
        let p = passages(&e, "docs/guide.md", &["markdown".to_string()], &text);
        assert!(p.spans.len() > 1);
        assert_eq!(p.spans.len(), p.texts.len());
        for t in &p.texts {
            assert!(t.starts_with("docs/guide.md [markdown]\n"), "{t}");
            // No tokenizer: 1.3 word pieces per word, so under 256 / 1.3 words.
            assert!(t.split_whitespace().count() < 200, "{}", t.split_whitespace().count());
        }
        let empty = passages(&e, "Title", &[], "");
        assert_eq!(empty.texts, vec!["Title".to_string()]);
    }
}
