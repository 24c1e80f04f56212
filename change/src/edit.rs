//! The edit formats a model answers in, their parser, and their application.
//!
//! Two formats: a **whole file** (the path on a line by itself, then the file's full text in a
//! fenced block) and **SEARCH/REPLACE blocks** (the path, then a fenced block holding
//! `<<<<<<< SEARCH`, the lines to find, `=======`, the lines to put instead, `>>>>>>> REPLACE`).
//! Measured with a 1.5B local model (docs/OFFLINE notes): small models copy placeholder text
//! literally, so [`instructions`] shows one concrete worked example; they often answer with a
//! whole file where blocks were asked, so [`parse`] accepts either form anywhere; and whole-file
//! answers did better on small files, so [`EditFormat::Auto`] asks for whole files up to
//! [`AUTO_WHOLE_FILE_MAX_LINES`] lines.
//!
//! [`apply`] checks every path with [`crate::safety`], applies each file's edits in memory,
//! refuses the whole answer when it is over the step's limits, and writes each file
//! atomically (a temporary file in the same folder, then a rename). A file whose edits do not
//! all apply is left untouched and reported with an exact message ([`EditOutcome::problems`]
//! is the text of the one automatic re-ask).

mod apply;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::apply;

/// Parses a model's answer, points its paths at the files that were shown ([`resolve`]),
/// and applies the edits: the one call for an implement/refine answer. What could not be
/// read in the answer is in [`EditOutcome::unread`]. Returns the edits too (for the record).
///
/// # Errors
/// Only I/O failures while writing.
pub fn apply_answer(
    root: &std::path::Path,
    answer: &str,
    shown: &[String],
    policy: &crate::safety::Policy,
) -> crate::Result<(Vec<Edit>, EditOutcome)> {
    let parsed = parse_detailed(answer);
    let edits = resolve(parsed.edits, shown);
    let mut outcome = apply(root, &edits, policy)?;
    outcome.unread = parsed.problems;
    Ok((edits, outcome))
}

/// Points each edit's path at the file the model meant when it shortened it: a path that is
/// not one of `shown` (the files put in the prompt, relative to the workspace) but is the
/// tail of exactly one of them (`calc.py` for `src/calc.py`) becomes that file. Other paths
/// (new files, exact names) stay as written.
pub fn resolve(edits: Vec<Edit>, shown: &[String]) -> Vec<Edit> {
    let clean = |p: &str| p.trim().trim_start_matches("./").to_string();
    edits
        .into_iter()
        .map(|edit| {
            let path = clean(edit.path());
            if path.is_empty() || shown.iter().any(|s| clean(s) == path) {
                return edit;
            }
            let tail = format!("/{path}");
            let mut matches = shown.iter().filter(|s| clean(s).ends_with(&tail));
            match (matches.next(), matches.next()) {
                (Some(only), None) => edit.with_path(clean(only)),
                _ => edit,
            }
        })
        .collect()
}
pub use parse::{Parsed, parse, parse_detailed};

use crate::safety::Refused;

pub use troupe_agent_config::edit_format::{AUTO_WHOLE_FILE_MAX_LINES, EditFormat};

/// One change a model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edit {
    /// The file's whole new content (creates the file when it does not exist).
    WholeFile {
        /// The path as the model wrote it (cleaned of decoration, `./` kept for safety checks).
        path: String,
        /// The full text, ending with a newline.
        content: String,
    },
    /// Replace the one occurrence of `search` with `replace`; an empty `search` creates the
    /// file (or appends to it).
    Replace {
        /// The path as the model wrote it.
        path: String,
        /// The lines to find, each ending with a newline (empty: a new file).
        search: String,
        /// The lines to put instead, each ending with a newline.
        replace: String,
    },
}

impl Edit {
    /// The same edit for another path.
    pub fn with_path(self, path: String) -> Self {
        match self {
            Self::WholeFile { content, .. } => Self::WholeFile { path, content },
            Self::Replace { search, replace, .. } => Self::Replace { path, search, replace },
        }
    }

    /// The path the edit changes, as the model wrote it.
    pub fn path(&self) -> &str {
        match self {
            Self::WholeFile { path, .. } | Self::Replace { path, .. } => path,
        }
    }
}

/// Renders an edit in the format [`parse`] reads (used by the instructions' example, tests
/// and logs).
pub fn render(edit: &Edit) -> String {
    match edit {
        Edit::WholeFile { path, content } => {
            let lang = fence_language(path);
            let mut out = format!("{path}\n```{lang}\n{content}");
            if !content.is_empty() && !content.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("```\n");
            out
        }
        Edit::Replace { path, search, replace } => {
            let lang = fence_language(path);
            let mut out = format!("{path}\n```{lang}\n<<<<<<< SEARCH\n{search}");
            if !search.is_empty() && !search.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("=======\n");
            out.push_str(replace);
            if !replace.is_empty() && !replace.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(">>>>>>> REPLACE\n```\n");
            out
        }
    }
}

/// The fence language for a path's extension (empty when unknown).
fn fence_language(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext {
        "py" => "python",
        "rs" => "rust",
        "js" | "mjs" | "cjs" => "javascript",
        "ts" => "typescript",
        "go" => "go",
        "java" => "java",
        "c" | "h" => "c",
        "cpp" | "hpp" | "cc" => "cpp",
        "rb" => "ruby",
        "sh" => "bash",
        "toml" => "toml",
        "json" => "json",
        "md" => "markdown",
        "yml" | "yaml" => "yaml",
        _ => "",
    }
}

/// A concrete two-line change used as the worked example: (file name, old lines, new lines).
/// Real code, never placeholders — a small model copies placeholder text literally.
fn example_for(files: &[(String, usize)]) -> (&'static str, &'static str, &'static str) {
    let ext = files
        .iter()
        .find_map(|(p, _)| p.rsplit_once('.').map(|(_, e)| e.to_string()))
        .unwrap_or_default();
    match ext.as_str() {
        "rs" => (
            "src/greet.rs",
            "pub fn greet(name: &str) -> String {\n    format!(\"Hello {name}\")\n",
            "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n",
        ),
        "js" | "ts" | "mjs" | "cjs" => (
            "src/greet.js",
            "function greet(name) {\n  return \"Hello \" + name;\n",
            "function greet(name) {\n  return \"Hello, \" + name + \"!\";\n",
        ),
        "go" => (
            "greet.go",
            "func Greet(name string) string {\n\treturn \"Hello \" + name\n",
            "func Greet(name string) string {\n\treturn \"Hello, \" + name + \"!\"\n",
        ),
        _ => (
            "greet.py",
            "def greet(name):\n    return \"Hello \" + name\n",
            "def greet(name):\n    return \"Hello, \" + name + \"!\"\n",
        ),
    }
}

/// The text put into implement/refine prompts: how to answer, with one concrete worked
/// example, and (for [`EditFormat::Auto`]) which form to use for each file.
/// `files` are the files shown to the model with their line counts.
pub fn instructions(format: EditFormat, files: &[(String, usize)]) -> String {
    let (name, old, new) = example_for(files);
    let whole_example =
        render(&Edit::WholeFile { path: name.to_string(), content: new.to_string() });
    let block_example = render(&Edit::Replace {
        path: name.to_string(),
        search: old.to_string(),
        replace: new.to_string(),
    });
    let whole_rule = "To write a whole file: put the file's path on a line by itself, then the \
                      complete new content of the file in a fenced code block. Write every line \
                      of the file, not only the changed ones.";
    let block_rule = "To change part of a file: put the file's path on a line by itself, then a \
                      fenced code block with `<<<<<<< SEARCH`, the lines to change copied exactly \
                      from the file, `=======`, the new lines, and `>>>>>>> REPLACE`. The SEARCH \
                      lines must match the file exactly and only once; include a few unchanged \
                      lines around the change when needed. Use several blocks for several \
                      changes.";
    let new_file_rule =
        "To create a new file, write its path and its whole content in a fenced code block.\n";
    let mut out = String::from("Answer with the changes to make, in this format.\n\n");
    let example_intro = |out: &mut String, what: &str| {
        out.push_str(&format!(
            "For example, to make `{}` say \"Hello, NAME!\" instead of \"Hello NAME\", {what}:\n\n",
            name.rsplit('/').next().unwrap_or(name)
        ));
    };
    match format {
        EditFormat::WholeFile => {
            out.push_str(whole_rule);
            out.push_str("\n\n");
            example_intro(&mut out, "answer");
            out.push_str(&whole_example);
        }
        EditFormat::SearchReplace => {
            out.push_str(block_rule);
            out.push_str("\n\n");
            example_intro(&mut out, "answer");
            out.push_str(&block_example);
            out.push_str(new_file_rule);
        }
        EditFormat::Auto => {
            let (whole, blocks): (Vec<_>, Vec<_>) =
                files.iter().partition(|(_, lines)| format.whole_file_for(*lines));
            let names = |list: &[&(String, usize)]| {
                list.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", ")
            };
            if blocks.is_empty() {
                out.push_str(whole_rule);
                out.push_str("\n\n");
                example_intro(&mut out, "answer");
                out.push_str(&whole_example);
            } else if whole.is_empty() {
                out.push_str(block_rule);
                out.push_str("\n\n");
                example_intro(&mut out, "answer");
                out.push_str(&block_example);
                out.push_str(&format!(
                    "\nDo not write {} whole (too long): change it with SEARCH/REPLACE blocks.\n",
                    names(&blocks)
                ));
            } else {
                out.push_str(whole_rule);
                out.push_str("\n\n");
                out.push_str(block_rule);
                out.push_str("\n\n");
                example_intro(&mut out, "the whole-file answer is");
                out.push_str(&whole_example);
                out.push_str("\nand the SEARCH/REPLACE answer is:\n\n");
                out.push_str(&block_example);
                out.push('\n');
                out.push_str(&format!("Write whole files for: {}.\n", names(&whole)));
                out.push_str(&format!(
                    "Do not write {} whole (too long): change it with SEARCH/REPLACE blocks.\n",
                    names(&blocks)
                ));
            }
            out.push_str(new_file_rule);
        }
    }
    out.push_str("Write only the files you change. Keep the paths exactly as given.\n");
    out
}

/// A file whose edits did not apply (the file was left untouched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditFailure {
    /// The path as the model wrote it.
    pub path: String,
    /// The edit's number in the answer, from 1.
    pub edit: usize,
    /// What went wrong, as a sentence for the model and the user.
    pub message: String,
}

impl fmt::Display for EditFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditOutcome {
    /// Files written (relative to the workspace root), in the answer's order.
    pub changed: Vec<PathBuf>,
    /// Edits refused by the safety rules (never applied).
    pub refused: Vec<Refused>,
    /// Edits that did not apply (their files were left untouched).
    pub failed: Vec<EditFailure>,
    /// Lines added over all changed files.
    pub lines_added: u64,
    /// Lines removed over all changed files.
    pub lines_removed: u64,
    /// What could not be read in the answer (a block without a path, a SEARCH without its
    /// `=======`), from [`apply_answer`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

impl EditOutcome {
    /// Whether every edit was applied.
    pub fn is_clean(&self) -> bool {
        self.refused.is_empty() && self.failed.is_empty() && self.unread.is_empty()
    }

    /// The text of the one automatic re-ask: each refused or failed edit with its reason, or
    /// `None` when everything applied.
    pub fn problems(&self) -> Option<String> {
        if self.is_clean() {
            return None;
        }
        let mut out = String::from("Some of your edits were not applied:\n");
        for failure in &self.failed {
            out.push_str(&format!("- {}\n", failure.message));
        }
        for refused in &self.refused {
            out.push_str(&format!("- {} was refused: {}\n", refused.path, refused.reason));
        }
        for unread in &self.unread {
            out.push_str(&format!("- {unread}\n"));
        }
        let mut untouched: Vec<&str> = self.failed.iter().map(|f| f.path.as_str()).collect();
        untouched.dedup();
        if !untouched.is_empty() {
            out.push_str(&format!(
                "No edit to {} was applied; those files are unchanged.\n",
                untouched.join(", ")
            ));
        }
        if self.changed.is_empty() {
            out.push_str("Nothing was changed. ");
        } else {
            let names: Vec<String> = self.changed.iter().map(|p| p.display().to_string()).collect();
            out.push_str(&format!(
                "The edits to {} were applied; do not repeat them. ",
                names.join(", ")
            ));
        }
        out.push_str(
            "Answer again with corrected edits for the files above only, in the same format, \
             against their current content.",
        );
        Some(out)
    }

    /// One line for people, e.g. "changed 2 files (+10 -3); 1 edit failed".
    pub fn summary(&self) -> String {
        let files = self.changed.len();
        let mut out = if files == 0 {
            "changed no files".to_string()
        } else {
            format!(
                "changed {files} file{} (+{} -{})",
                if files == 1 { "" } else { "s" },
                self.lines_added,
                self.lines_removed
            )
        };
        if !self.failed.is_empty() {
            let n = self.failed.len();
            out.push_str(&format!("; {n} edit{} did not apply", if n == 1 { "" } else { "s" }));
        }
        if !self.unread.is_empty() {
            let n = self.unread.len();
            out.push_str(&format!(
                "; {n} block{} could not be read",
                if n == 1 { "" } else { "s" }
            ));
        }
        if !self.refused.is_empty() {
            let n = self.refused.len();
            out.push_str(&format!("; {n} edit{} refused", if n == 1 { " was" } else { "s were" }));
        }
        out
    }
}

impl fmt::Display for EditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())
    }
}
