//! `troupe plan …`: make, read, edit, approve and run plans — in this process, or through
//! the `troupe serve` that holds the store (the same output and exit codes).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use troupe_plans::{NewPlan, Plan, PlanEvent, PlanSpec, PlanState, Plans, TaskState};
use troupe_workflows::Config;
use troupe_workflows::config::ConfigSource;

use super::exit;
use crate::cli::{PlanArgs, PlanCommand};
use crate::client::{Client, segment};
use crate::render::plan::{commit_message, mark, short, status_text};

/// How long a planner's turn through the server may take.
const PLANNER_WAIT: Duration = Duration::from_secs(1800);
/// How long other plan requests through the server may take.
const REQUEST_WAIT: Duration = Duration::from_secs(120);
/// How soon a plan followed through the server is read again when its event stream is quiet.
const POLL: Duration = Duration::from_millis(500);

/// Where plan commands go.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// This process holds the store.
    Local(&'a Plans),
    /// A running `troupe serve` holds it.
    Remote(&'a Client),
}

fn plan_of(v: Value) -> Result<Plan, String> {
    serde_json::from_value(v)
        .map_err(|e| format!("the server sent a plan this troupe cannot read: {e}"))
}

impl Target<'_> {
    async fn remote(
        c: &Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        wait: Duration,
    ) -> Result<Plan, String> {
        plan_of(c.plans(method, path, body.as_ref(), wait).await.map_err(|e| e.to_string())?)
    }

    /// A new plan from the planner.
    pub async fn create(&self, req: NewPlan) -> Result<Plan, String> {
        match self {
            Target::Local(p) => p.create(req).await.map_err(|e| plan_error(p, e)),
            Target::Remote(c) => {
                let body = json!({"spec": req.spec, "project": req.project, "planner": req.planner,
                    "offline": req.offline, "approve": req.approve});
                Self::remote(c, reqwest::Method::POST, "", Some(body), PLANNER_WAIT).await
            }
        }
    }

    /// A plan.
    pub async fn get(&self, id: &str) -> Result<Plan, String> {
        match self {
            Target::Local(p) => p.get(id).map_err(|e| e.to_string()),
            Target::Remote(c) => {
                Self::remote(
                    c,
                    reqwest::Method::GET,
                    &format!("/{}", segment(id)),
                    None,
                    REQUEST_WAIT,
                )
                .await
            }
        }
    }

    /// Every plan.
    pub async fn list(&self) -> Result<Vec<Plan>, String> {
        match self {
            Target::Local(p) => p.list().map_err(|e| e.to_string()),
            Target::Remote(c) => {
                let v = c
                    .plans(reqwest::Method::GET, "", None, REQUEST_WAIT)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::from_value(v)
                    .map_err(|e| format!("the server sent plans this troupe cannot read: {e}"))
            }
        }
    }

    /// Replace the plan's text.
    pub async fn edit(&self, id: &str, spec: PlanSpec) -> Result<Plan, String> {
        match self {
            Target::Local(p) => p.edit(id, spec).map_err(|e| e.to_string()),
            Target::Remote(c) => {
                let body = json!({"spec": spec});
                Self::remote(
                    c,
                    reqwest::Method::PUT,
                    &format!("/{}", segment(id)),
                    Some(body),
                    REQUEST_WAIT,
                )
                .await
            }
        }
    }

    /// Revise with feedback.
    pub async fn revise(&self, id: &str, feedback: &str) -> Result<Plan, String> {
        match self {
            Target::Local(p) => p.revise(id, feedback).await.map_err(|e| plan_error(p, e)),
            Target::Remote(c) => {
                let body = json!({"feedback": feedback});
                Self::remote(
                    c,
                    reqwest::Method::POST,
                    &format!("/{}/revise", segment(id)),
                    Some(body),
                    PLANNER_WAIT,
                )
                .await
            }
        }
    }

    /// `approve`, `reject`, `pause` or `resume`.
    pub async fn act(&self, id: &str, action: &str) -> Result<Plan, String> {
        match self {
            Target::Local(p) => match action {
                "approve" => p.approve(id),
                "reject" => p.reject(id),
                "pause" => p.pause(id),
                _ => p.resume(id),
            }
            .map_err(|e| e.to_string()),
            Target::Remote(c) => {
                Self::remote(
                    c,
                    reqwest::Method::POST,
                    &format!("/{}/{action}", segment(id)),
                    None,
                    REQUEST_WAIT,
                )
                .await
            }
        }
    }

    /// Start running.
    pub async fn run(&self, id: &str, concurrency: Option<usize>) -> Result<Plan, String> {
        match self {
            Target::Local(p) => p.run(id, concurrency).map_err(|e| e.to_string()),
            Target::Remote(c) => {
                let body = json!({"concurrency": concurrency});
                Self::remote(
                    c,
                    reqwest::Method::POST,
                    &format!("/{}/run", segment(id)),
                    Some(body),
                    REQUEST_WAIT,
                )
                .await
            }
        }
    }

    /// `retry` or `skip` a task.
    pub async fn task(&self, id: &str, task: &str, action: &str) -> Result<Plan, String> {
        match self {
            Target::Local(p) => {
                if action == "retry" { p.retry(id, task) } else { p.skip(id, task) }
                    .map_err(|e| e.to_string())
            }
            Target::Remote(c) => {
                let path = format!("/{}/tasks/{}/{action}", segment(id), segment(task));
                Self::remote(c, reqwest::Method::POST, &path, None, REQUEST_WAIT).await
            }
        }
    }

    /// Apply the combined change.
    pub async fn apply(&self, id: &str, commit: bool) -> Result<Plan, String> {
        match self {
            Target::Local(p) => {
                let message = match commit {
                    true => Some(commit_message(&p.get(id).map_err(|e| e.to_string())?)),
                    false => None,
                };
                p.apply(id, message).await.map_err(|e| e.to_string())
            }
            Target::Remote(c) => {
                let body = json!({"commit": commit});
                Self::remote(
                    c,
                    reqwest::Method::POST,
                    &format!("/{}/apply", segment(id)),
                    Some(body),
                    REQUEST_WAIT,
                )
                .await
            }
        }
    }

    /// Follow a plan until its scheduler stops (done, failed, paused), printing each task's
    /// changes; the plan then.
    pub async fn follow(&self, id: &str) -> Result<Plan, String> {
        match self {
            Target::Local(p) => {
                let mut events = p.subscribe();
                let plan = p.get(id).map_err(|e| e.to_string())?;
                show_changes(&plan, &mut HashMap::new());
                let wait = p.wait(&plan.id);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        done = &mut wait => return done.map_err(|e| e.to_string()),
                        Ok(e) = events.recv() => print_event(&plan.id, &e),
                    }
                }
            }
            Target::Remote(c) => {
                // The server's event stream, read again when it ends while the plan still
                // runs (a restarted server picks the plan up again); what changed in between
                // is printed from the plan itself, each task's state once.
                let mut plan = self.get(id).await?;
                let mut shown: HashMap<String, TaskState> = HashMap::new();
                show_changes(&plan, &mut shown);
                while plan.state == PlanState::Running {
                    let mut heard = 0;
                    if let Ok(mut stream) = c.plan_events(&plan.id).await {
                        while let Ok(Some(e)) = stream.next().await {
                            heard += 1;
                            if let Ok(PlanEvent::TaskState { plan_id, task, state, run_id, reason }) =
                                serde_json::from_str(&e.data)
                                && plan_id == plan.id
                                && shown.insert(task.clone(), state) != Some(state)
                            {
                                print_task(&task, state, run_id.as_deref(), reason.as_deref());
                            }
                        }
                    }
                    if heard <= 1 {
                        // Not running in the server (yet) or no server: look again soon.
                        tokio::time::sleep(POLL).await;
                    }
                    plan = self.get(id).await?;
                    show_changes(&plan, &mut shown);
                }
                Ok(plan)
            }
        }
    }
}

/// Print the tasks of `plan` whose state differs from the one `shown` last (pending ones
/// only once they were shown otherwise).
fn show_changes(plan: &Plan, shown: &mut HashMap<String, TaskState>) {
    for t in &plan.spec.tasks {
        let s = plan.tasks.get(&t.id).cloned().unwrap_or_default();
        let before = shown.insert(t.id.clone(), s.state);
        if before != Some(s.state) && (before.is_some() || s.state != TaskState::Pending) {
            print_task(&t.id, s.state, s.run_id.as_deref(), s.reason.as_deref());
        }
    }
}

/// The planner's failure with its raw answer kept in a file of the data folder.
fn plan_error(plans: &Plans, e: troupe_plans::Error) -> String {
    if let troupe_plans::Error::PlannerFailed { agent, problems, answer, .. } = e {
        let dir = plans.runtime().config().data_dir().join("plans");
        let file =
            dir.join(format!("planner-answer-{}.txt", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
        let kept =
            std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, &answer)).is_ok();
        return troupe_plans::Error::PlannerFailed {
            agent,
            problems,
            answer,
            answer_file: kept.then_some(file),
        }
        .to_string();
    }
    e.to_string()
}

/// `troupe plan …`.
pub fn plan_command(config: Config, source: ConfigSource, args: PlanArgs) -> Result<u8> {
    if let Some(server) = super::via_api::find_server(&config.data_dir()) {
        let Some(client) = super::via_api::client(&config, &server)? else {
            return Ok(exit::USAGE);
        };
        let offline = config.settings.offline;
        let project = config.project_path();
        return crate::block_on(async move {
            run_plan_command(Target::Remote(&client), args.command, offline, project).await
        });
    }
    let offline = config.settings.offline;
    let project = config.project_path();
    super::run::with_runtime(config, source, offline, |runtime| async move {
        let plans = match Plans::open(runtime) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("troupe: {e}");
                return Ok(exit::FAILED);
            }
        };
        run_plan_command(Target::Local(&plans), args.command, offline, project).await
    })
}

/// One plan command against `target`; the exit code.
pub async fn run_plan_command(
    target: Target<'_>,
    command: PlanCommand,
    offline: bool,
    project: PathBuf,
) -> Result<u8> {
    let out = match command {
        PlanCommand::New { spec, spec_file, planner, approve, project: dir, json } => {
            let spec = match (spec, spec_file) {
                (Some(s), _) => s,
                (None, Some(f)) => match std::fs::read_to_string(&f) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("troupe: cannot read the spec {}: {e}", f.display());
                        return Ok(exit::USAGE);
                    }
                },
                (None, None) => {
                    eprintln!("troupe: say what to plan, or give --spec FILE");
                    return Ok(exit::USAGE);
                }
            };
            let project = dir.map(|d| d.canonicalize().unwrap_or(d)).unwrap_or(project);
            eprintln!("troupe: planning…");
            let req = NewPlan { spec, project: Some(project), planner, offline, approve };
            target.create(req).await.map(|p| show(&p, json))
        }
        PlanCommand::Show { id, json } => target.get(&id).await.map(|p| show(&p, json)),
        PlanCommand::Status { id, json } => target.get(&id).await.map(|p| status(&p, json)),
        PlanCommand::List(f) => target.list().await.map(|plans| list(&plans, f.json)),
        PlanCommand::Edit { id } => return edit(target, &id).await,
        PlanCommand::Revise { id, feedback } => {
            eprintln!("troupe: revising…");
            target.revise(&id, &feedback).await.map(|p| show(&p, false))
        }
        PlanCommand::Approve { id } => target
            .act(&id, "approve")
            .await
            .map(|p| said(&p, "approved; run it with `troupe plan run`")),
        PlanCommand::Reject { id } => target.act(&id, "reject").await.map(|p| said(&p, "rejected")),
        PlanCommand::Pause { id } => {
            target.act(&id, "pause").await.map(|p| said(&p, "paused: no new task starts"))
        }
        PlanCommand::Resume { id } => match target.act(&id, "resume").await {
            Ok(p) => return finish_following(target, &p.id).await,
            Err(e) => Err(e),
        },
        PlanCommand::Run { id, concurrency, detach } => match target.run(&id, concurrency).await {
            Ok(p) if detach => Ok(said(&p, "running")),
            Ok(p) => return finish_following(target, &p.id).await,
            Err(e) => Err(e),
        },
        PlanCommand::Retry { id, task } => match target.task(&id, &task, "retry").await {
            Ok(p) => return finish_following(target, &p.id).await,
            Err(e) => Err(e),
        },
        PlanCommand::Skip { id, task } => match target.task(&id, &task, "skip").await {
            Ok(p) if p.state == PlanState::Running => return finish_following(target, &p.id).await,
            Ok(p) => Ok(said(&p, &format!("task `{task}` skipped"))),
            Err(e) => Err(e),
        },
        PlanCommand::Apply { id, commit } => target.apply(&id, commit).await.map(|p| {
            let files = p
                .integration
                .as_ref()
                .and_then(|w| w.applied.as_ref())
                .map(|a| a.files.len())
                .unwrap_or(0);
            println!(
                "applied plan {}: {files} file(s) changed in {}",
                p.short_id(),
                p.project.display()
            );
            exit::OK
        }),
    };
    Ok(out.unwrap_or_else(|e| {
        eprintln!("troupe: {e}");
        exit::FAILED
    }))
}

async fn finish_following(target: Target<'_>, id: &str) -> Result<u8> {
    match target.follow(id).await {
        Ok(p) => {
            println!();
            print!("{}", status_text(&p));
            Ok(match p.state {
                PlanState::Done => {
                    println!(
                        "\nevery task is green; see the change with `git diff` on {}, apply it with `troupe plan apply {}`",
                        p.branch(),
                        p.short_id()
                    );
                    exit::OK
                }
                PlanState::Paused => exit::OK,
                _ => exit::FAILED,
            })
        }
        Err(e) => {
            eprintln!("troupe: {e}");
            Ok(exit::FAILED)
        }
    }
}

/// `troupe plan edit`: the TOML in $EDITOR, checked when the editor closes; on a problem
/// the file is kept and named.
async fn edit(target: Target<'_>, id: &str) -> Result<u8> {
    let plan = match target.get(id).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::FAILED);
        }
    };
    let file = std::env::temp_dir().join(format!("troupe-plan-{}.toml", plan.short_id()));
    std::fs::write(&file, troupe_plans::render::toml(&plan.spec))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = std::process::Command::new(program).args(words).arg(&file).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!(
                "troupe: {editor} ended with {s}; the plan is unchanged (your text is in {})",
                file.display()
            );
            return Ok(exit::FAILED);
        }
        Err(e) => {
            eprintln!("troupe: cannot start the editor `{editor}` ({e}); set $EDITOR");
            return Ok(exit::USAGE);
        }
    }
    let text = std::fs::read_to_string(&file)?;
    let spec = match troupe_plans::render::from_toml(&text) {
        Ok(s) => s,
        Err(problems) => {
            eprintln!("troupe: the edited plan is not valid; nothing changed:");
            for p in problems {
                eprintln!("  {p}");
            }
            eprintln!(
                "troupe: your text is kept in {}; fix it and run `troupe plan edit {}` again",
                file.display(),
                plan.short_id()
            );
            return Ok(exit::FAILED);
        }
    };
    if spec == plan.spec {
        println!("plan {} is unchanged", plan.short_id());
        let _ = std::fs::remove_file(&file);
        return Ok(exit::OK);
    }
    match target.edit(&plan.id, spec).await {
        Ok(p) => {
            let _ = std::fs::remove_file(&file);
            Ok(said(&p, &format!("edited: version {} (approve it again to run it)", p.version())))
        }
        Err(e) => {
            eprintln!("troupe: {e}\ntroupe: your text is kept in {}", file.display());
            Ok(exit::FAILED)
        }
    }
}

fn said(plan: &Plan, what: &str) -> u8 {
    println!("plan {} {what}", plan.short_id());
    exit::OK
}

fn show(plan: &Plan, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string_pretty(plan).unwrap_or_default());
    } else {
        print!("{}", troupe_plans::render::markdown(plan));
        if plan.state == PlanState::Draft {
            println!(
                "\nNext: `troupe plan approve {0}` (or `plan edit {0}`, `plan revise {0} \"…\"`, `plan reject {0}`)",
                plan.short_id()
            );
        }
    }
    exit::OK
}

fn list(plans: &[Plan], json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string_pretty(plans).unwrap_or_default());
        return exit::OK;
    }
    if plans.is_empty() {
        println!("no plans yet; make one with `troupe plan new \"…\"`");
        return exit::OK;
    }
    println!("{:<10} {:<9} {:>5} {:>6}  TITLE", "ID", "STATE", "TASKS", "GREEN");
    for p in plans.iter().rev() {
        let green = p.tasks.values().filter(|t| t.state.satisfies()).count();
        println!(
            "{:<10} {:<9} {:>5} {:>6}  {}",
            p.short_id(),
            p.state.as_str(),
            p.spec.tasks.len(),
            green,
            p.spec.title
        );
    }
    exit::OK
}

fn status(plan: &Plan, json: bool) -> u8 {
    if json {
        let tasks: Vec<Value> = plan
            .spec
            .tasks
            .iter()
            .map(|t| json!({"id": t.id, "after": t.after, "status": plan.tasks.get(&t.id)}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"id": plan.id, "state": plan.state, "tasks": tasks})
            )
            .unwrap_or_default()
        );
    } else {
        print!("{}", status_text(plan));
    }
    exit::OK
}

fn print_task(task: &str, state: TaskState, run: Option<&str>, reason: Option<&str>) {
    let run = run.map(|r| format!(" (run {})", short(r))).unwrap_or_default();
    let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
    println!("{} {task} {state}{run}{reason}", mark(state));
}

fn print_event(plan_id: &str, e: &PlanEvent) {
    if let PlanEvent::TaskState { plan_id: p, task, state, run_id, reason } = e
        && p == plan_id
    {
        print_task(task, *state, run_id.as_deref(), reason.as_deref());
    }
}
