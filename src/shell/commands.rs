//! The shell's slash commands.

use anyhow::Result;
use troupe_context::{ProjectId, Scope, SearchQuery, project_id_for};
use troupe_workflows::config::DYNAMIC_WORKFLOW;

use super::{Flow, SHELL_OFFLINE, Session, new_conversation};
use crate::render::{Table, short_id};

/// Every command with its arguments and what it does, for `/help` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("/workflow", "[NAME]", "show or change the workflow tasks run through"),
    ("/workflows", "", "list the workflows"),
    ("/agents", "", "list the agents and whether they can be used"),
    ("/offline", "on|off", "refuse (or allow again) agents off this machine"),
    ("/context", "search QUERY", "search the project memory"),
    ("/history", "", "the tasks of this session"),
    ("/runs", "", "the latest runs"),
    ("/diff", "[--stat]", "the last run's change (--stat: files and line counts)"),
    (
        "/apply",
        "[--commit]",
        "apply the last run's change to the project (--commit: and commit it)",
    ),
    ("/revert", "", "undo the last run's applied change"),
    ("/discard", "", "remove the last run's workspace and branch"),
    (
        "/plan",
        "new SPEC|show ID|approve ID|run ID|status ID",
        "plans: a spec becomes tasks run in order",
    ),
    ("/usage", "[all]", "tokens (and cost) of this project's runs, per agent and run"),
    ("/export", "obsidian DIR", "export the project memory as an Obsidian vault"),
    ("/clear", "", "start a new conversation (follow-ups no longer see earlier tasks)"),
    ("/help", "", "this list"),
    ("/quit", "", "leave (Ctrl-D works too)"),
];

/// `/plan new SPEC | show ID | approve ID | run ID | status ID`: the same as `troupe plan`.
async fn plan(session: &mut Session, rest: &str) -> Result<Flow> {
    use crate::cli::PlanCommand as P;
    let (sub, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim().to_string();
    if arg.is_empty() {
        return Ok(usage(
            session,
            "usage: /plan new SPEC | show ID | approve ID | run ID | status ID",
        ));
    }
    let command = match sub {
        "new" => P::New {
            spec: Some(arg),
            spec_file: None,
            planner: None,
            approve: false,
            project: session.project.clone(),
            json: false,
        },
        "show" => P::Show { id: arg, json: false },
        "approve" => P::Approve { id: arg },
        "run" => P::Run { id: arg, concurrency: None, detach: false },
        "status" => P::Status { id: arg, json: false },
        other => {
            return Ok(usage(
                session,
                &format!("/plan takes new, show, approve, run or status, not {other:?}"),
            ));
        }
    };
    let plans = match troupe_plans::Plans::open(session.runtime.clone()) {
        Ok(p) => p,
        Err(e) => return Ok(usage(session, &e.to_string())),
    };
    let project =
        session.project.clone().unwrap_or_else(|| session.runtime.config().project_path());
    let target = crate::commands::plan::Target::Local(&plans);
    let code = crate::commands::plan::run_plan_command(target, command, session.offline(), project)
        .await?;
    if code != crate::commands::exit::OK {
        session.failed = true;
    }
    Ok(Flow::Continue)
}

fn usage(session: &mut Session, message: &str) -> Flow {
    eprintln!("troupe: {message}");
    session.misused = true;
    Flow::Continue
}

/// Run one slash command.
pub async fn dispatch(session: &mut Session, input: &str) -> Result<Flow> {
    let mut parts = input.splitn(2, char::is_whitespace);
    let cmd = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim();
    Ok(match cmd {
        "/quit" | "/exit" | "/q" => Flow::Quit,
        "/help" | "/?" => {
            help();
            Flow::Continue
        }
        "/workflow" => workflow(session, rest),
        "/workflows" => {
            workflows(session);
            Flow::Continue
        }
        "/agents" => {
            agents(session);
            Flow::Continue
        }
        "/offline" => offline(session, rest),
        "/context" => context(session, rest).await,
        "/history" => {
            history(session);
            Flow::Continue
        }
        "/runs" => {
            runs(session);
            Flow::Continue
        }
        "/usage" => usage_report(session, rest),
        "/diff" | "/apply" | "/revert" | "/discard" => change(session, cmd, rest).await?,
        "/export" => export(session, rest).await,
        "/plan" => plan(session, rest).await?,
        "/clear" => {
            session.conversation = new_conversation();
            println!("New conversation: the next task starts fresh (the project memory stays).");
            Flow::Continue
        }
        other => usage(session, &format!("unknown command {other}; /help lists the commands")),
    })
}

fn help() {
    println!(
        "Type a task to run it through the current workflow; follow-ups see the earlier tasks."
    );
    println!(
        "End a line with \\ to continue on the next one. Ctrl-C cancels a running task, Ctrl-D leaves.\n"
    );
    let mut t = Table::new(&["COMMAND", "", ""]);
    for (c, a, d) in COMMANDS {
        t.row(vec![c.to_string(), a.to_string(), d.to_string()]);
    }
    print!("{}", t.render());
}

fn workflow(session: &mut Session, name: &str) -> Flow {
    if name.is_empty() {
        println!("workflow: {}", session.workflow_name());
        return Flow::Continue;
    }
    let config = session.runtime.config();
    if let Err(e) = config.check_workflow(name) {
        return usage(session, &e.to_string());
    }
    session.workflow = Some(name.to_string());
    println!("workflow: {name}");
    Flow::Continue
}

fn workflows(session: &Session) {
    let config = session.runtime.config();
    let current = session.workflow_name();
    let mut t = Table::new(&["", "NAME", "ITER", "STEPS"]);
    for (name, w) in &config.workflows {
        let steps: Vec<String> =
            w.steps.iter().map(|s| format!("{}:{}", s.agent, s.role)).collect();
        t.row(vec![
            if *name == current { "*".into() } else { String::new() },
            name.clone(),
            w.max_iterations.to_string(),
            steps.join(" → "),
        ]);
    }
    t.row(vec![
        if current == DYNAMIC_WORKFLOW { "*".into() } else { String::new() },
        DYNAMIC_WORKFLOW.into(),
        String::new(),
        "planned by an agent for each task".into(),
    ]);
    print!("{}", t.render());
}

fn agents(session: &Session) {
    let runtime = &session.runtime;
    let offline = session.offline();
    let mut t = Table::new(&["NAME", "KIND", "ROLE", "STATUS", "SUCCESS", "MODEL"]);
    for (name, a) in &runtime.config().agents {
        let status = runtime.availability(name, offline).map(|a| a.to_string()).unwrap_or_default();
        let (calls, ok) = runtime.metrics().agent_stats(name);
        let success = if calls > 0 {
            format!("{:.0}% of {calls}", ok as f64 * 100.0 / calls as f64)
        } else {
            "-".into()
        };
        t.row(vec![
            name.clone(),
            a.kind.to_string(),
            a.role.map(|r| r.to_string()).unwrap_or_default(),
            status,
            success,
            a.model.clone().unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
}

fn offline(session: &mut Session, arg: &str) -> Flow {
    let Some(registry) = session.runtime.registry().cloned() else {
        return usage(session, "offline mode cannot be changed in this session");
    };
    match arg {
        "on" => {
            registry.offline().set(Some(format!("{SHELL_OFFLINE} in the shell")));
            println!("offline: only agents on this machine are used");
        }
        "off" => {
            if session.runtime.config().settings.offline {
                println!(
                    "offline stays on: the session started with --offline (or settings.offline); restart without it"
                );
            } else {
                registry.offline().set(None);
                println!("online: every configured agent may be used");
            }
        }
        "" => println!("offline: {}", if session.offline() { "on" } else { "off" }),
        other => return usage(session, &format!("/offline takes on or off, not {other:?}")),
    }
    Flow::Continue
}

/// The project memory and the session's project's id in it; `None` once it has said what is
/// wrong (the memory is not open, the project folder cannot be read).
fn project_memory(session: &Session) -> Option<(troupe_context::Store, ProjectId)> {
    let Some(store) = session.runtime.context_store().cloned() else {
        eprintln!("troupe: the project memory is not open");
        return None;
    };
    let path = session.project.clone().unwrap_or_else(|| session.runtime.config().project_path());
    match project_id_for(&path) {
        Ok((id, _)) => Some((store, id)),
        Err(e) => {
            eprintln!("troupe: the project {}: {e}", path.display());
            None
        }
    }
}

async fn context(session: &mut Session, rest: &str) -> Flow {
    let query = match rest.strip_prefix("search") {
        Some(q) if q.is_empty() || q.starts_with(char::is_whitespace) => q.trim(),
        _ => return usage(session, "usage: /context search QUERY"),
    };
    if query.is_empty() {
        return usage(session, "usage: /context search QUERY");
    }
    let Some((store, id)) = project_memory(session) else { return Flow::Continue };
    let q = SearchQuery::new(query, Scope::Project(id)).limit(8);
    let results = match tokio::task::spawn_blocking(move || store.search(&q)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("troupe: search failed: {e}");
            return Flow::Continue;
        }
        Err(e) => {
            eprintln!("troupe: search failed: {e}");
            return Flow::Continue;
        }
    };
    if let Some(w) = &results.warning {
        eprintln!("troupe: warning: {w}");
    }
    if results.hits.is_empty() {
        println!("No hits for {query:?} (scan the project with `troupe context scan` first).");
        return Flow::Continue;
    }
    for (i, h) in results.hits.iter().enumerate() {
        let snippet = h.node.body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let snippet: String = snippet.chars().take(100).collect();
        println!("{:>2}. {} [{}] {:.3}", i + 1, h.node.title, h.node.node_type, h.score);
        if !snippet.is_empty() {
            println!("    {snippet}");
        }
    }
    Flow::Continue
}

fn history(session: &Session) {
    if session.history.is_empty() {
        println!("No tasks yet in this session.");
        return;
    }
    for (i, r) in session.history.iter().enumerate() {
        println!(
            "{:>2}. [{}] {} ({}, run {})",
            i + 1,
            r.state,
            r.task,
            r.workflow_name,
            short_id(&r.id)
        );
    }
}

fn runs(session: &Session) {
    let mut runs = match session.runtime.store().runs() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("troupe: {e}");
            return;
        }
    };
    runs.reverse();
    if runs.is_empty() {
        println!("No runs yet.");
        return;
    }
    let mut t = Table::new(&["ID", "STATE", "WORKFLOW", "TOKENS", "CREATED", "TASK"]);
    for r in runs.iter().take(15) {
        t.row(vec![
            short_id(&r.id).to_string(),
            r.state.to_string(),
            r.workflow_name.clone(),
            r.tokens.total().to_string(),
            r.created_at.format("%Y-%m-%d %H:%M").to_string(),
            r.task.chars().take(50).collect(),
        ]);
    }
    print!("{}", t.render());
}

/// `/diff [--stat]`, `/apply [--commit]`, `/revert`, `/discard`: on the session's last run.
async fn change(session: &mut Session, cmd: &str, rest: &str) -> Result<Flow> {
    use crate::commands::change::{self, ChangeCommand as C, Target};
    let flag = match cmd {
        "/diff" => "--stat",
        "/apply" => "--commit",
        _ => "",
    };
    let on = match rest {
        "" => false,
        r if !flag.is_empty() && r == flag => true,
        other => {
            let takes =
                if flag.is_empty() { "nothing".to_string() } else { format!("{flag} or nothing") };
            return Ok(usage(session, &format!("{cmd} takes {takes}, not {other:?}")));
        }
    };
    let Some(last) = session.history.last() else {
        println!("No run yet in this session: type a task first.");
        return Ok(Flow::Continue);
    };
    let id = last.id.clone();
    let command = match cmd {
        "/diff" => C::Diff { id: id.clone(), stat: on, json: false },
        "/apply" => C::Apply { id: id.clone(), commit: on, json: false },
        "/revert" => C::Revert { id: id.clone(), json: false },
        _ => C::Discard { id: id.clone(), json: false },
    };
    if change::run(Target::Local(&session.runtime), command).await? != crate::commands::exit::OK {
        session.failed = true;
    }
    // Keep the session's copy of the run current (applied, discarded).
    if let Ok((record, _)) = session.runtime.run(&id)
        && let Some(slot) = session.history.last_mut()
    {
        *slot = record;
    }
    Ok(Flow::Continue)
}

fn usage_report(session: &mut Session, rest: &str) -> Flow {
    let project = match rest {
        "" => {
            Some(session.project.clone().unwrap_or_else(|| session.runtime.config().project_path()))
        }
        "all" => None,
        other => return usage(session, &format!("/usage takes `all` or nothing, not {other:?}")),
    };
    let args = crate::cli::UsageArgs { project, since: None, json: false };
    if let Err(e) = crate::commands::usage::usage(&session.runtime, &args) {
        eprintln!("troupe: {e}");
    }
    Flow::Continue
}

async fn export(session: &mut Session, rest: &str) -> Flow {
    let mut parts = rest.splitn(2, char::is_whitespace);
    let (what, dir) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default().trim());
    if what != "obsidian" || dir.is_empty() {
        return usage(session, "usage: /export obsidian DIR");
    }
    let Some((store, id)) = project_memory(session) else {
        session.failed = true;
        return Flow::Continue;
    };
    let options = troupe_export::ExportOptions::new(dir, Scope::Project(id));
    match tokio::task::spawn_blocking(move || troupe_export::export(&store, &options)).await {
        Ok(Ok(s)) => println!(
            "Exported {} note(s) to {}: {} written, {} unchanged, {} removed, {} link(s). Open the folder as a vault in Obsidian.",
            s.notes,
            s.dir.display(),
            s.written,
            s.unchanged,
            s.removed,
            s.links
        ),
        Ok(Err(e)) => {
            eprintln!("troupe: the export failed: {e}");
            session.failed = true;
        }
        Err(e) => {
            eprintln!("troupe: the export failed: {e}");
            session.failed = true;
        }
    }
    Flow::Continue
}
