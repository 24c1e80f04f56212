//! The interactive line editor: reedline on a thread of its own (it blocks), handing each
//! complete input to the session and waiting for the session's next prompt.
//!
//! While a task runs the editor is not reading, so the terminal is in its normal mode and
//! Ctrl-C reaches the run's display as SIGINT: the running step is cancelled and the prompt
//! comes back. At the prompt, Ctrl-C clears the line and Ctrl-D leaves.

use anyhow::Result;
use reedline::{
    ColumnarMenu, Completer, CompletionResult, DefaultHinter, DefaultPrompt, DefaultPromptSegment,
    EditCommand, Emacs, FileBackedHistory, KeyCode, KeyModifiers, MenuBuilder, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, Span, Suggestion, ValidationResult, Validator,
    default_emacs_keybindings,
};
use tokio::sync::mpsc;

use super::commands::COMMANDS;
use super::{Flow, Session, handle, join_continued};

/// Lines kept in the history file.
const HISTORY_SIZE: usize = 5000;

/// What the editor thread hands over.
#[derive(Debug)]
enum Input {
    /// A complete input.
    Line(String),
    /// Ctrl-D, or the terminal is gone.
    Eof,
}

/// Completes slash commands, `/workflow` names, `/offline` and `/export` arguments, and
/// agent and workflow names anywhere in a task.
#[derive(Debug, Clone)]
pub struct ShellCompleter {
    /// Workflow names (with `dynamic`).
    pub workflows: Vec<String>,
    /// Agent names.
    pub agents: Vec<String>,
}

impl ShellCompleter {
    /// Suggestions for `line` with the cursor at `pos`.
    pub fn suggestions(&self, line: &str, pos: usize) -> Vec<Suggestion> {
        let line = line.get(..pos).unwrap_or(line);
        let word_start = line.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
        let word = &line[word_start..];
        let head = line[..word_start].trim_end();
        let candidates: Vec<(String, Option<String>)> = if word_start == 0 && word.starts_with('/')
        {
            COMMANDS.iter().map(|(c, _, d)| (c.to_string(), Some(d.to_string()))).collect()
        } else if head == "/workflow" {
            self.workflows.iter().map(|w| (w.clone(), None)).collect()
        } else if head == "/offline" {
            vec![("on".into(), None), ("off".into(), None)]
        } else if head == "/export" {
            vec![("obsidian".into(), None)]
        } else if head == "/context" {
            vec![("search".into(), None)]
        } else if !line.starts_with('/') && !word.is_empty() {
            self.agents.iter().chain(&self.workflows).map(|n| (n.clone(), None)).collect()
        } else {
            Vec::new()
        };
        candidates
            .into_iter()
            .filter(|(c, _)| c.starts_with(word) && c != word)
            .map(|(value, description)| Suggestion {
                value,
                description,
                span: Span::new(word_start, pos.min(line.len())),
                append_whitespace: true,
                ..Suggestion::default()
            })
            .collect()
    }
}

impl Completer for ShellCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(self.suggestions(line, pos))
    }
}

/// A line ending in `\` continues on the next one.
#[derive(Debug, Clone, Copy)]
struct Continuation;

impl Validator for Continuation {
    fn validate(&self, line: &str) -> ValidationResult {
        if line.ends_with('\\') { ValidationResult::Incomplete } else { ValidationResult::Complete }
    }
}

fn editor(completer: ShellCompleter, history: Option<std::path::PathBuf>) -> Reedline {
    let mut keybindings = default_emacs_keybindings();
    keybindings.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion_menu".to_string()),
            ReedlineEvent::MenuNext,
        ]),
    );
    keybindings.add_binding(
        KeyModifiers::ALT,
        KeyCode::Enter,
        ReedlineEvent::Edit(vec![EditCommand::InsertNewline]),
    );
    let menu = ColumnarMenu::default().with_name("completion_menu");
    let mut editor = Reedline::create()
        .with_completer(Box::new(completer))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_hinter(Box::new(DefaultHinter::default()))
        .with_validator(Box::new(Continuation))
        .with_edit_mode(Box::new(Emacs::new(keybindings)))
        .use_bracketed_paste(true);
    if let Some(path) = history {
        match FileBackedHistory::with_file(HISTORY_SIZE, path.clone()) {
            Ok(h) => editor = editor.with_history(Box::new(h)),
            Err(e) => eprintln!("troupe: no history file ({}): {e}", path.display()),
        }
    }
    editor
}

/// The interactive session.
pub async fn interactive(session: &mut Session) -> Result<()> {
    let config = session.runtime.config();
    let mut workflows: Vec<String> = config.workflows.keys().cloned().collect();
    workflows.push(troupe_workflows::config::DYNAMIC_WORKFLOW.to_string());
    let completer = ShellCompleter { workflows, agents: config.agents.keys().cloned().collect() };
    let history = Some(config.data_dir().join("shell_history.txt"));

    // From here on SIGINT never ends the process by default: a Ctrl-C that lands between
    // submitting a task and its display listening for it is ignored, not fatal.
    actix_rt::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let (input_tx, mut input_rx) = mpsc::channel::<Input>(1);
    // The session sends the next prompt, or `None` to end the editor thread.
    let (prompt_tx, prompt_rx) = std::sync::mpsc::channel::<Option<String>>();
    let thread =
        std::thread::Builder::new().name("troupe-shell-editor".into()).spawn(move || {
            let mut editor = editor(completer, history);
            while let Ok(Some(prompt_text)) = prompt_rx.recv() {
                let prompt = DefaultPrompt::new(
                    DefaultPromptSegment::Basic(prompt_text),
                    DefaultPromptSegment::Empty,
                );
                loop {
                    let input = match editor.read_line(&prompt) {
                        Ok(Signal::Success(text)) => Input::Line(text),
                        // Ctrl-C at the prompt clears the line.
                        Ok(Signal::CtrlC) => continue,
                        Ok(Signal::CtrlD) => Input::Eof,
                        Ok(_) => continue,
                        Err(e) => {
                            eprintln!("troupe: the terminal failed: {e}");
                            Input::Eof
                        }
                    };
                    let eof = matches!(input, Input::Eof);
                    if input_tx.blocking_send(input).is_err() || eof {
                        return;
                    }
                    break;
                }
            }
        })?;

    println!("troupe shell · {} · /help for commands, Ctrl-D to leave", session.prompt_text());
    let _ = prompt_tx.send(Some(session.prompt_text()));
    while let Some(input) = input_rx.recv().await {
        let Input::Line(text) = input else { break };
        let flow = handle(session, &join_continued(&text)).await?;
        if flow == Flow::Quit {
            break;
        }
        if prompt_tx.send(Some(session.prompt_text())).is_err() {
            break;
        }
    }
    let _ = prompt_tx.send(None);
    drop(input_rx);
    let _ = thread.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completer() -> ShellCompleter {
        ShellCompleter {
            workflows: vec!["default".into(), "dynamic".into(), "quick".into()],
            agents: vec!["claude".into(), "codex".into(), "local-code".into()],
        }
    }

    fn values(line: &str) -> Vec<String> {
        completer().suggestions(line, line.len()).into_iter().map(|s| s.value).collect()
    }

    #[test]
    fn completes_commands_workflows_and_agents() {
        assert_eq!(values("/wor"), vec!["/workflow", "/workflows"]);
        assert_eq!(values("/workflow q"), vec!["quick"]);
        assert_eq!(values("/offline o"), vec!["on", "off"]);
        assert_eq!(values("ask c"), vec!["claude", "codex"]);
        assert!(values("/nothing").is_empty());
        let s = completer().suggestions("/workflow q", 11);
        assert_eq!(s[0].span, Span::new(10, 11));
    }
}
