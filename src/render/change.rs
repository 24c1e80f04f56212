//! A run's change for people: the commit message, the patch and its `--stat`, coloured as
//! `git diff` colours them.

use troupe_change::workspace::Change;
use troupe_runtime::RunRecord;

use super::short_id;

/// The commit message of `runs apply --commit`: the task's first line and the run.
pub fn commit_message(r: &RunRecord) -> String {
    let first = r.task.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("a change");
    let first: String = first.chars().take(72).collect();
    format!("troupe: {first} (run {})", short_id(&r.id))
}

pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const CYAN: &str = "\x1b[36m";
pub(crate) const RESET: &str = "\x1b[0m";

/// A patch for people: with `colour`, file headers bold, hunk headers cyan, added lines
/// green and removed lines red (as `git diff` colours them); without, the patch as is.
pub fn render_patch(patch: &str, colour: bool) -> String {
    if !colour {
        return patch.to_string();
    }
    let mut out = String::with_capacity(patch.len() + patch.len() / 4);
    // Between `diff --git` and the first `@@`, lines are the file's header (`--- a/x` is
    // not a removed line there).
    let mut in_header = false;
    for line in patch.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix('\n') {
            Some(t) => (t, "\n"),
            None => (line, ""),
        };
        let paint = if text.starts_with("diff --git ") {
            in_header = true;
            Some(BOLD)
        } else if text.starts_with("@@") {
            in_header = false;
            Some(CYAN)
        } else if in_header {
            Some(BOLD)
        } else if text.starts_with('+') {
            Some(GREEN)
        } else if text.starts_with('-') {
            Some(RED)
        } else {
            None
        };
        match paint {
            Some(p) if !text.is_empty() => out.push_str(&format!("{p}{text}{RESET}{end}")),
            _ => out.push_str(line),
        }
    }
    out
}

/// A `--stat` summary for people: with `colour`, each file's `+` green and `-` red.
pub fn render_stat(change: &Change, colour: bool) -> String {
    let stat = change.stat();
    if !colour {
        return stat;
    }
    let mut out = String::new();
    for line in stat.lines() {
        match line.rsplit_once(' ') {
            Some((head, bar))
                if line.contains(" | ")
                    && !bar.is_empty()
                    && bar.chars().all(|c| c == '+' || c == '-') =>
            {
                let plus = bar.chars().filter(|c| *c == '+').count();
                let (p, m) = bar.split_at(plus);
                out.push_str(&format!("{head} {GREEN}{p}{RESET}{RED}{m}{RESET}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/notes.txt b/notes.txt\nindex 1..2 100644\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@\n line1\n-line2\n+CHANGED\n line3\n";

    #[test]
    fn plain_patches_stay_as_they_are() {
        assert_eq!(render_patch(PATCH, false), PATCH);
    }

    #[test]
    fn colour_marks_headers_hunks_and_lines() {
        let out = render_patch(PATCH, true);
        assert!(out.contains(&format!("{BOLD}--- a/notes.txt{RESET}\n")), "{out}");
        assert!(out.contains(&format!("{BOLD}+++ b/notes.txt{RESET}\n")), "{out}");
        assert!(out.contains(&format!("{CYAN}@@ -1,3 +1,3 @@{RESET}\n")), "{out}");
        assert!(out.contains(&format!("{RED}-line2{RESET}\n")), "{out}");
        assert!(out.contains(&format!("{GREEN}+CHANGED{RESET}\n")), "{out}");
        assert!(out.contains("\n line1\n"), "{out}");
        // Nothing but colour was added.
        let stripped = out.replace(BOLD, "").replace(CYAN, "").replace(RED, "");
        let stripped = stripped.replace(GREEN, "").replace(RESET, "");
        assert_eq!(stripped, PATCH);
    }

    #[test]
    fn stat_bars_are_coloured_and_the_rest_kept() {
        let change: Change = serde_json::from_value(serde_json::json!({
            "base": "b", "head": "h", "patch": PATCH,
            "files": [{ "path": "notes.txt", "status": "modified", "added": 2, "removed": 1 }]
        }))
        .unwrap();
        let plain = render_stat(&change, false);
        assert_eq!(plain, change.stat());
        let coloured = render_stat(&change, true);
        assert!(coloured.contains(&format!("{GREEN}++{RESET}{RED}-{RESET}\n")), "{coloured:?}");
        let stripped = coloured.replace(GREEN, "").replace(RED, "").replace(RESET, "");
        assert_eq!(stripped, plain);
    }
}
