//! The plain-call half of the task benchmark (`scripts/bench-tasks.sh --mode plain`): troupe's
//! own edit format and parser, without troupe's loop.
//!
//! ```text
//! cargo run -p troupe-change --example bench_edit -- prompt DIR TASK_FILE   > prompt.txt
//! cargo run -p troupe-change --example bench_edit -- apply  DIR ANSWER_FILE
//! ```
//!
//! `prompt` prints one prompt: the task, every file of the project (path, then its content in a
//! fence, as troupe's implement step shows files) and `troupe_change::edit::instructions` for
//! those files. `apply` parses a model's answer with `troupe_change::edit::parse` and applies it
//! under DIR with `troupe_change::edit::apply` and the default safety policy, printing the
//! outcome; it exits 0 when every edit applied, 1 when some did not (or none was found).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use troupe_change::edit::{self, EditFormat};
use troupe_change::safety::Policy;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, dir, file] if cmd == "prompt" => prompt(Path::new(dir), Path::new(file)),
        [cmd, dir, file] if cmd == "apply" => apply(Path::new(dir), Path::new(file)),
        _ => {
            Err("usage: bench_edit prompt DIR TASK_FILE | bench_edit apply DIR ANSWER_FILE".into())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_edit: {e}");
            ExitCode::from(2)
        }
    }
}

/// Every text file under `root` (no hidden folders, no caches), relative, with `/`, sorted.
fn project_files(root: &Path) -> Result<Vec<(String, String)>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name =
                path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if let Ok(content) = std::fs::read_to_string(&path) {
                let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
                let rel: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
                out.push((rel.join("/"), content));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn prompt(root: &Path, task_file: &Path) -> Result<ExitCode, String> {
    let task = std::fs::read_to_string(task_file)
        .map_err(|e| format!("cannot read the task {}: {e}", task_file.display()))?;
    let files = project_files(root)?;
    let mut text = format!("Task: {}\n\nThe project's files:\n\n", task.trim());
    for (path, content) in &files {
        let lang = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        text.push_str(&format!("{path}\n```{lang}\n{content}"));
        if !content.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("```\n\n");
    }
    let sizes: Vec<(String, usize)> =
        files.iter().map(|(p, c)| (p.clone(), c.lines().count())).collect();
    text.push_str(&edit::instructions(EditFormat::Auto, &sizes));
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn apply(root: &Path, answer_file: &Path) -> Result<ExitCode, String> {
    let answer = std::fs::read_to_string(answer_file)
        .map_err(|e| format!("cannot read the answer {}: {e}", answer_file.display()))?;
    let edits = edit::parse(&answer);
    if edits.is_empty() {
        println!("no edit found in the answer");
        return Ok(ExitCode::from(1));
    }
    let outcome =
        edit::apply(root, &edits, &Policy::default()).map_err(|e| format!("cannot apply: {e}"))?;
    println!("{}", outcome.summary());
    if let Some(problems) = outcome.problems() {
        println!("{problems}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
