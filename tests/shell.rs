//! `troupe shell` driven as a script would (input piped in) and as a person would (in a
//! pseudo-terminal: completion, Ctrl-C, Ctrl-D), with CLI agents made of shell scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Pty, World, cli_agent, workflow, write_script};

fn world() -> World {
    let w = World::new();
    let dir = &w.dir;
    let prompts = dir.path().join("prompts.log");
    // The coder records every prompt it gets; a task containing "explode" fails.
    write_script(
        &dir.path().join("coder.sh"),
        &format!(
            "printf '%s\\n=====\\n' \"$1\" >> '{}'\ncase \"$1\" in *explode*) echo boom >&2; exit 3;; esac\necho 'done: the code'\n",
            prompts.display()
        ),
    );
    write_script(&dir.path().join("sleeper.sh"), "echo thinking\nexec sleep 60\n");
    let config = w.config.clone();
    let text = [
        "[settings]\ndefault_workflow = \"solo\"\n\n".to_string(),
        cli_agent("coder", &dir.path().join("coder.sh"), "retry = { max_attempts = 1 }\n"),
        cli_agent("sleeper", &dir.path().join("sleeper.sh"), ""),
        workflow("solo", 1, &[("coder", "implement")]),
        workflow("slow", 1, &[("sleeper", "implement")]),
    ];
    std::fs::write(&config, text.concat()).unwrap();
    w
}

fn shell_cmd(w: &World) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    c.arg("--config")
        .arg(&w.config)
        .arg("shell")
        .current_dir(&w.project)
        .env("TROUPE_HOME", &w.home)
        .env("TROUPE_ASSETS", w.home.join("assets"))
        .env_remove("RUST_LOG");
    c
}

fn piped(w: &World, input: &str) -> Output {
    let mut child = shell_cmd(w)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn piped_tasks_run_and_follow_ups_see_the_conversation() {
    let w = world();
    let out = piped(
        &w,
        "write the parser\n\nnow add tests \\\nfor it\n/history\n/usage\n/export obsidian vault\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("» write the parser"), "{stdout}");
    assert!(stdout.contains("done: the code"), "{stdout}");
    assert_eq!(stdout.matches("✔ completed").count(), 2, "{stdout}");
    assert!(stdout.contains("1. [completed] write the parser"), "{stdout}");
    assert!(stdout.contains("2. [completed] now add tests \nfor it"), "{stdout}");
    // `/usage`: this project's two runs, per agent.
    assert!(stdout.contains("total: 2 run(s)"), "{stdout}");
    assert!(stdout.contains("AGENT"), "{stdout}");
    // The memory of the session exported as a vault.
    assert!(stdout.contains("Open the folder as a vault in Obsidian"), "{stdout}");
    assert!(w.project.join("vault/_Index.md").is_file());
    let notes = std::process::Command::new("grep")
        .args(["-rl", "write the parser"])
        .arg(w.project.join("vault"))
        .output()
        .unwrap();
    assert!(!notes.stdout.is_empty(), "no note mentions the first task");
    // The second task's prompt carries the first turn; the continued line is one task.
    let prompts = std::fs::read_to_string(w.path("prompts.log")).unwrap();
    let second = prompts.split("=====").nth(1).unwrap();
    assert!(second.contains("now add tests \nfor it"), "{second}");
    assert!(second.contains("write the parser"), "{second}");
}

#[test]
fn slash_commands_work_through_a_pipe() {
    let w = world();
    let out = piped(
        &w,
        "/help\n/workflows\n/workflow slow\n/workflow\n/workflow solo\n/agents\n/offline on\n/offline\n/offline off\n/runs\n/usage\n/usage all\n/context search parser\n/export obsidian vault\n/clear\n/history\n/quit\nthis is never run\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for expected in [
        "/context",        // help
        "coder:implement", // workflows
        "workflow: slow",  // /workflow slow, then /workflow
        "workflow: solo",
        "sleeper", // agents
        "offline: only agents on this machine",
        "offline: on",
        "online: every configured agent",
        "No runs yet.",
        "No runs match.", // /usage: of this project
        "No hits",
        "Open the folder as a vault in Obsidian",
        "New conversation",
        "No tasks yet in this session.",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}\n{stderr}");
    }
    assert!(!stdout.contains("this is never run"), "{stdout}");
    assert!(w.project.join("vault").is_dir());
}

#[test]
fn unknown_commands_and_bad_arguments_are_usage_errors() {
    let w = world();
    let out = piped(&w, "/frobnicate\n/workflow nonsense\n/offline maybe\nwrite it\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("unknown command /frobnicate; /help lists the commands"), "{stderr}");
    assert!(stderr.contains("no workflow named `nonsense`"), "{stderr}");
    assert!(stderr.contains("/offline takes on or off"), "{stderr}");
    // The session went on after them.
    assert!(stdout.contains("✔ completed"), "{stdout}");
}

#[test]
fn a_failed_task_makes_the_exit_code_one() {
    let w = world();
    // `/clear` keeps the failed turn (and its "explode") out of the next prompt.
    let out = piped(&w, "explode please\n/clear\nthen something fine\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("✘ failed"), "{stdout}");
    assert!(stdout.contains("✔ completed"), "{stdout}");
    // Empty input is a successful, empty session.
    let out = piped(&w, "");
    assert_eq!(out.status.code(), Some(0));
    // An unknown workflow on the command line is bad usage.
    let out = shell_cmd(&w).args(["--workflow", "nope"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A session in a pseudo-terminal.
fn pty(w: &World) -> Pty {
    let troupe = env!("CARGO_BIN_EXE_troupe");
    let cmdline = format!("exec '{troupe}' --config '{}' shell", w.config.display());
    let mut cmd = Command::new("true");
    cmd.current_dir(&w.project)
        .env("TROUPE_HOME", &w.home)
        .env("TROUPE_ASSETS", w.home.join("assets"));
    Pty::start(&cmdline, cmd)
}

#[test]
fn in_a_terminal_tab_completes_and_ctrl_c_cancels_the_running_task() {
    let w = world();
    let mut pty = pty(&w);
    pty.expect("project · solo");
    // Tab completes a command and then a workflow name.
    pty.send("/workfl");
    pty.send("\t");
    pty.expect("/workflow");
    pty.send(" sl\t");
    pty.expect("slow");
    pty.send("\r");
    pty.expect("workflow: slow");
    pty.expect("project · slow");
    // A task that hangs; Ctrl-C cancels it and the prompt comes back.
    pty.send("wait forever\r");
    pty.expect("thinking");
    std::thread::sleep(Duration::from_millis(300));
    pty.send("\x03");
    pty.expect("cancelled");
    pty.expect("project · slow");
    pty.send("/history\r");
    pty.expect("[cancelled] wait forever");
    // A trailing backslash continues the task on the next line.
    pty.send("/workflow solo\r");
    pty.expect("project · solo");
    pty.send("first line \\\r");
    pty.send("second line\r");
    pty.expect("✔ completed");
    pty.send("/history\r");
    pty.expect("[completed] first line");
    pty.expect("second line");
    // Ctrl-D leaves; a cancelled task counts as not succeeded.
    pty.send("\x04");
    assert_eq!(pty.wait(), Some(1));
    // The history file kept what was typed.
    let history = std::fs::read_to_string(w.home.join("shell_history.txt")).unwrap();
    assert!(history.contains("wait forever"), "{history}");
    let prompts = std::fs::read_to_string(w.path("prompts.log")).unwrap();
    assert!(prompts.contains("first line \nsecond line"), "{prompts}");
}

/// The real local llama.cpp server (installed by `scripts/setup.sh --assets-only`), started
/// on demand: a whole piped session of two tasks, the second seeing the first.
#[test]
fn a_session_against_the_real_local_model() {
    let w = world();
    w.use_local_model("default_workflow = \"local\"\n");
    let out = piped(
        &w,
        "Write a function that reverses a string\n/agents\nNow make it handle None\n/history\n/runs\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("▶ [1.1] implement · local-code").count(), 2, "{stdout}");
    assert!(
        stdout.contains("SmolLM2") || stdout.contains(".gguf") || stdout.contains("local-code ("),
        "{stdout}"
    );
    assert!(stdout.contains("2. [completed] Now make it handle None (local"), "{stdout}");
}
