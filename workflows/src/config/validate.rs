//! Cross-references and values: everything a type check cannot see.

use std::collections::{BTreeMap, BTreeSet};

use troupe_agent_config::config::{AgentKind, is_loopback_url};

use super::{Config, DYNAMIC_WORKFLOW, Location, Problem, Problems, Severity};

/// One step of a path into the configuration tree, like `workflows.default.steps[1].agent`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathSeg<'a> {
    Key(&'a str),
    Index(usize),
}

use PathSeg::{Index, Key};

/// Finds where a path was written, for messages.
pub(crate) trait SpanLookup {
    fn locate(&self, path: &[PathSeg<'_>]) -> Location;
}

/// For configurations that came from no file.
pub(crate) struct NoSpans;

impl SpanLookup for NoSpans {
    fn locate(&self, _: &[PathSeg<'_>]) -> Location {
        Location::Builtin
    }
}

const MAX_ITERATIONS: u32 = 50;

pub(crate) fn validate(config: &Config, spans: &dyn SpanLookup) -> Problems {
    let mut v = Validator { config, spans, problems: Vec::new() };
    v.settings();
    v.agents();
    v.fallback_cycles();
    v.workflows();
    v.telemetry();
    v.validate_and_edits();
    Problems(v.problems)
}

struct Validator<'a> {
    config: &'a Config,
    spans: &'a dyn SpanLookup,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn push(&mut self, severity: Severity, path: &[PathSeg<'_>], message: String) {
        let location = self.spans.locate(path);
        self.problems.push(Problem { severity, location, message });
    }

    fn error(&mut self, path: &[PathSeg<'_>], message: String) {
        self.push(Severity::Error, path, message);
    }

    fn warn(&mut self, path: &[PathSeg<'_>], message: String) {
        self.push(Severity::Warning, path, message);
    }

    fn known_agents(&self) -> String {
        self.config.agents.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn unknown_agent(&mut self, path: &[PathSeg<'_>], what: &str, name: &str) {
        let hint = suggest(name, self.config.agents.keys().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let known = self.known_agents();
        self.error(
            path,
            format!("{what} names unknown agent `{name}`{hint}; known agents: {known}"),
        );
    }

    fn settings(&mut self) {
        let s = &self.config.settings;
        let wf = s.default_workflow.clone();
        if wf != DYNAMIC_WORKFLOW && !self.config.workflows.contains_key(&wf) {
            let known: Vec<_> = self.config.workflows.keys().cloned().collect();
            self.error(
                &[Key("settings"), Key("default_workflow")],
                format!(
                    "default_workflow `{wf}` is not a workflow; known: {}, {DYNAMIC_WORKFLOW}",
                    known.join(", ")
                ),
            );
        }
        if let Some(planner) = s.planner_agent.clone()
            && !self.config.agents.contains_key(&planner)
        {
            self.unknown_agent(&[Key("settings"), Key("planner_agent")], "planner_agent", &planner);
        }
        if s.max_output_tokens == 0 {
            self.error(
                &[Key("settings"), Key("max_output_tokens")],
                "max_output_tokens must be at least 1".into(),
            );
        }
        if s.max_concurrent_runs == 0 {
            self.error(
                &[Key("settings"), Key("max_concurrent_runs")],
                "max_concurrent_runs must be at least 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&s.min_success_rate) {
            self.error(
                &[Key("settings"), Key("min_success_rate")],
                format!("min_success_rate must be between 0 and 1, found {}", s.min_success_rate),
            );
        }
        for (key, value) in
            [("run_cost_budget", s.run_cost_budget), ("project_cost_budget", s.project_cost_budget)]
        {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                self.error(
                    &[Key("settings"), Key(key)],
                    format!("{key} must be a positive number, found {v}"),
                );
            }
        }
        for (key, value) in [
            ("run_token_budget", s.run_token_budget),
            ("project_token_budget", s.project_token_budget),
            ("project_budget_days", s.project_budget_days.map(u64::from)),
        ] {
            if value == Some(0) {
                self.error(&[Key("settings"), Key(key)], format!("{key} must be at least 1"));
            }
        }
        let priced = self.config.agents.values().any(|a| a.price.is_some());
        if (s.run_cost_budget.is_some() || s.project_cost_budget.is_some()) && !priced {
            self.warn(
                &[Key("settings"), Key(if s.run_cost_budget.is_some() { "run_cost_budget" } else { "project_cost_budget" })],
                "a cost budget is set but no agent has a `price`, so every call costs 0; add `price = { prompt_per_1k = …, completion_per_1k = … }` to the agents that cost money".into(),
            );
        }
        for (i, name) in s.secret_env.iter().enumerate() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error(
                    &[Key("settings"), Key("secret_env"), Index(i)],
                    format!("secret_env entries are environment variable NAMES (like MY_SERVICE_KEY), found {name:?}"),
                );
            }
        }
        if s.offline && !self.config.agents.values().any(|a| a.enabled && a.is_local()) {
            self.warn(
                &[Key("settings"), Key("offline")],
                "offline mode is on but no enabled agent is local (on a loopback address)".into(),
            );
        }
    }

    fn agents(&mut self) {
        for (name, agent) in &self.config.agents {
            let at = |field: &'static str| [Key("agents"), Key(name.as_str()), Key(field)];
            match agent.kind {
                AgentKind::Cli => {
                    if agent.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                        self.error(
                            &at("kind"),
                            format!("agent `{name}` is a cli agent but has no `command`"),
                        );
                    }
                    if agent.base_url.is_some() {
                        self.warn(
                            &at("base_url"),
                            format!("agent `{name}` is a cli agent; `base_url` is ignored"),
                        );
                    }
                }
                kind => {
                    match agent.base_url.as_deref() {
                        None => self.error(
                            &at("kind"),
                            format!("agent `{name}` is a {kind} agent but has no `base_url` (e.g. http://127.0.0.1:8080/v1)"),
                        ),
                        Some(url) => match url::Url::parse(url) {
                            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                            Ok(u) => self.error(
                                &at("base_url"),
                                format!("agent `{name}`: base_url must be an http(s) URL with a host, found scheme `{}`", u.scheme()),
                            ),
                            Err(e) => self.error(&at("base_url"), format!("agent `{name}`: base_url `{url}` is not a URL: {e}")),
                        },
                    }
                    if matches!(kind, AgentKind::Openai | AgentKind::Ollama)
                        && agent.model.is_none()
                    {
                        self.error(
                            &at("kind"),
                            format!("agent `{name}` is a {kind} agent but has no `model`"),
                        );
                    }
                    if !agent.args.is_empty() {
                        self.warn(
                            &at("args"),
                            format!("agent `{name}` is an HTTP agent; `args` is ignored"),
                        );
                    }
                    if agent.server.is_some()
                        && !agent.base_url.as_deref().is_some_and(is_loopback_url)
                    {
                        self.error(
                            &at("server"),
                            format!("agent `{name}` has a managed `server` but its base_url is not on a loopback address"),
                        );
                    }
                }
            }
            if let Some(var) = &agent.api_key_env {
                let looks_like_name = !var.is_empty()
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !var.starts_with(|c: char| c.is_ascii_digit());
                if !looks_like_name {
                    self.error(
                        &at("api_key_env"),
                        format!("agent `{name}`: api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), not a key"),
                    );
                }
            }
            if agent.timeout_secs == 0 {
                self.error(
                    &at("timeout_secs"),
                    format!("agent `{name}`: timeout_secs must be at least 1"),
                );
            }
            for (field, value) in [
                ("connect_timeout_secs", Some(agent.connect_timeout_secs)),
                ("first_byte_timeout_secs", agent.first_byte_timeout_secs),
                ("idle_timeout_secs", Some(agent.idle_timeout_secs)),
            ] {
                if value == Some(0) {
                    self.error(&at(field), format!("agent `{name}`: {field} must be at least 1"));
                } else if let Some(v) =
                    value.filter(|v| agent.kind.is_http() && *v > agent.timeout_secs)
                {
                    self.warn(
                        &at(field),
                        format!(
                            "agent `{name}`: {field} = {v} is longer than timeout_secs = {}, \
                             which caps the whole call; it never fires",
                            agent.timeout_secs
                        ),
                    );
                }
            }
            if agent.retry.max_attempts == 0 {
                self.error(
                    &[Key("agents"), Key(name.as_str()), Key("retry"), Key("max_attempts")],
                    format!(
                        "agent `{name}`: retry.max_attempts must be at least 1 (1 means no retries)"
                    ),
                );
            }
            if agent.breaker.failure_threshold == 0 {
                self.error(
                    &[Key("agents"), Key(name.as_str()), Key("breaker"), Key("failure_threshold")],
                    format!("agent `{name}`: breaker.failure_threshold must be at least 1"),
                );
            }
            for (field, value) in [
                ("requests_per_minute", agent.rate_limit.requests_per_minute),
                ("tokens_per_minute", agent.rate_limit.tokens_per_minute),
            ] {
                if value == Some(0) {
                    self.error(
                        &[Key("agents"), Key(name.as_str()), Key("rate_limit"), Key(field)],
                        format!("agent `{name}`: rate_limit.{field} must be at least 1 (leave it out for no limit)"),
                    );
                }
            }
            self.generation(name, agent);
            for (i, fb) in agent.fallback.iter().enumerate() {
                let path = [Key("agents"), Key(name.as_str()), Key("fallback"), Index(i)];
                if fb == name {
                    self.error(&path, format!("agent `{name}` lists itself as a fallback"));
                } else if !self.config.agents.contains_key(fb) {
                    self.unknown_agent(&path, &format!("agent `{name}`'s fallback"), fb);
                }
            }
        }
    }

    /// An agent's generation settings: each in its range, and a warning for settings its
    /// kind of endpoint never receives.
    fn generation(&mut self, name: &str, agent: &troupe_agent_config::AgentConfig) {
        let at = |field: &'static str| [Key("agents"), Key(name), Key(field)];
        let what = format!("agent `{name}`");
        for (field, value, lo, hi) in [
            ("temperature", agent.temperature, 0.0, 2.0),
            ("top_p", agent.top_p, 0.0, 1.0),
            ("min_p", agent.min_p, 0.0, 1.0),
            ("repeat_penalty", agent.repeat_penalty, 0.0, 2.0),
        ] {
            if let Some(msg) = out_of_range(&what, field, value, lo, hi) {
                self.error(&at(field), msg);
            }
        }
        if agent.top_k.is_some_and(|k| k > 1000) {
            self.error(
                &at("top_k"),
                format!(
                    "{what}: top_k must be from 0 to 1000 (0 = no limit), found {}",
                    agent.top_k.unwrap_or(0)
                ),
            );
        }
        if agent.max_tokens == Some(0) {
            self.error(
                &at("max_tokens"),
                format!(
                    "{what}: max_tokens must be at least 1 (leave it out for the server's default)"
                ),
            );
        }
        if let Some(c) = agent.context_tokens
            && !(256..=10_000_000).contains(&c)
        {
            self.error(
                &at("context_tokens"),
                format!("{what}: context_tokens must be from 256 to 10000000, found {c}"),
            );
        }
        if agent.max_concurrent_calls == Some(0) {
            self.error(
                &at("max_concurrent_calls"),
                format!(
                    "{what}: max_concurrent_calls must be at least 1 (leave it out for no bound)"
                ),
            );
        }
        if let (Some(c), Some(m)) = (agent.context_tokens, agent.max_tokens)
            && m >= c
        {
            self.error(&at("max_tokens"), format!("{what}: max_tokens ({m}) must be smaller than context_tokens ({c}), or no room is left for the prompt"));
        }
        for (i, s) in agent.stop.iter().enumerate() {
            if s.is_empty() {
                self.error(
                    &[Key("agents"), Key(name), Key("stop"), Index(i)],
                    format!("{what}: a stop sequence must not be empty"),
                );
            }
        }
        let sampling_set = agent.temperature.is_some()
            || agent.top_p.is_some()
            || agent.top_k.is_some()
            || agent.min_p.is_some()
            || agent.repeat_penalty.is_some()
            || agent.max_tokens.is_some()
            || !agent.stop.is_empty()
            || agent.seed.is_some();
        if agent.kind == AgentKind::Cli && sampling_set {
            self.warn(&at("kind"), format!("{what} is a cli agent; generation settings (temperature, max_tokens, …) are not passed to CLIs and are ignored"));
        }
        if agent.kind == AgentKind::Openai {
            for (field, set) in [
                ("top_k", agent.top_k.is_some()),
                ("min_p", agent.min_p.is_some()),
                ("repeat_penalty", agent.repeat_penalty.is_some()),
            ] {
                if set {
                    self.warn(&at(field), format!("{what}: {field} is not part of the OpenAI API and is not sent; use kind = \"llamacpp\" for a llama.cpp server"));
                }
            }
        }
    }

    /// Each cycle in the fallback graph is reported once, at its alphabetically first agent.
    fn fallback_cycles(&mut self) {
        let graph: BTreeMap<&str, Vec<&str>> = self
            .config
            .agents
            .iter()
            .map(|(n, a)| {
                let next = a
                    .fallback
                    .iter()
                    .map(String::as_str)
                    .filter(|f| *f != n && self.config.agents.contains_key(*f))
                    .collect();
                (n.as_str(), next)
            })
            .collect();
        let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
        for start in graph.keys() {
            // Depth-first search for a path from `start` back to `start`.
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            let mut on_path: Vec<&str> = vec![start];
            let mut visited: BTreeSet<&str> = BTreeSet::new();
            while let Some((node, i)) = stack.pop() {
                let next = graph.get(node).and_then(|n| n.get(i)).copied();
                match next {
                    None => {
                        on_path.pop();
                    }
                    Some(n) => {
                        stack.push((node, i + 1));
                        if n == *start {
                            // Report each cycle once: from its alphabetically first agent.
                            let cycle = on_path.clone();
                            if cycle.iter().min() == Some(start) && reported.insert(cycle.clone()) {
                                let mut shown = cycle;
                                shown.push(start);
                                self.error(
                                    &[Key("agents"), Key(start), Key("fallback")],
                                    format!("fallback cycle: {}", shown.join(" → ")),
                                );
                            }
                        } else if visited.insert(n) {
                            on_path.push(n);
                            stack.push((n, 0));
                        }
                    }
                }
            }
        }
    }

    fn validate_and_edits(&mut self) {
        let config = self.config;
        self.validators(
            &[Key("validate")],
            Some(config.validate.timeout_secs),
            Some(&config.validate.commands),
        );
        for (name, wf) in &config.workflows {
            if let Some(over) = &wf.validate {
                self.validators(
                    &[Key("workflows"), Key(name.as_str()), Key("validate")],
                    over.timeout_secs,
                    over.commands.as_ref(),
                );
            }
        }
        let edits = &config.edits;
        for (key, value) in [("max_files", edits.max_files), ("max_lines", edits.max_lines)] {
            if value == 0 {
                self.error(
                    &[Key("edits"), Key(key)],
                    format!("edits.{key} must be at least 1 (0 would refuse every change)"),
                );
            }
        }
        if edits.candidates > 10 {
            self.error(
                &[Key("edits"), Key("candidates")],
                format!("edits.candidates = {} is too many; use 0 to 10 (each is a model call and a validator run)", edits.candidates),
            );
        }
        if !(0.0..=2.0).contains(&edits.candidate_temperature) {
            self.error(
                &[Key("edits"), Key("candidate_temperature")],
                format!(
                    "edits.candidate_temperature = {} is out of range; use 0 to 2",
                    edits.candidate_temperature
                ),
            );
        }
        for (i, glob) in edits.protected.iter().enumerate() {
            if glob.trim().is_empty() {
                self.error(
                    &[Key("edits"), Key("protected"), Index(i)],
                    "edits.protected entries are globs like \".env*\" or \"secrets/**\"; remove the empty one".into(),
                );
            }
        }
    }

    fn validators(
        &mut self,
        at: &[PathSeg<'_>],
        timeout_secs: Option<u64>,
        commands: Option<&Vec<String>>,
    ) {
        if timeout_secs == Some(0) {
            let mut path = at.to_vec();
            path.push(Key("timeout_secs"));
            self.error(&path, "validate.timeout_secs must be at least 1 second".into());
        }
        for (i, command) in commands.into_iter().flatten().enumerate() {
            if command.trim().is_empty() {
                let mut path = at.to_vec();
                path.extend([Key("commands"), Index(i)]);
                self.error(
                    &path,
                    "validate.commands entries are commands like \"cargo test\"; remove the empty one (an empty list detects the project's tests)".into(),
                );
            }
        }
    }

    fn telemetry(&mut self) {
        let t = &self.config.telemetry;
        let at = |field: &'static str| [Key("telemetry"), Key(field)];
        if let Some(endpoint) = t.endpoint.clone() {
            let url = troupe_observability::telemetry::traces_url(&endpoint);
            if let Err(why) = troupe_observability::telemetry::check_endpoint(&url) {
                self.error(
                    &at("endpoint"),
                    format!("{why}; expected an OTLP/HTTP URL like http://127.0.0.1:4318"),
                );
            } else if self.config.settings.offline && !is_loopback_url(&url) {
                self.warn(
                    &at("endpoint"),
                    format!(
                        "offline mode is on and the telemetry endpoint {endpoint} is not on this \
                         machine: no spans will be exported"
                    ),
                );
            }
        }
        if let Some(ratio) = t.sample_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            self.error(
                &at("sample_ratio"),
                format!("sample_ratio must be between 0 and 1, found {ratio}"),
            );
        }
        if t.service_name.as_deref().is_some_and(|s| s.trim().is_empty()) {
            self.error(&at("service_name"), "service_name must not be empty".into());
        }
        for (name, value) in &t.headers {
            let path = [Key("telemetry"), Key("headers"), Key(name.as_str())];
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                self.error(
                    &path,
                    format!("telemetry header name `{name}` is not a valid HTTP header name"),
                );
            }
            // The value is a secret: say what is wrong without repeating it.
            if value.chars().any(|c| c.is_control() && c != '\t') {
                self.error(
                    &path,
                    format!("the value of telemetry header `{name}` has control characters"),
                );
            }
        }
    }

    fn workflows(&mut self) {
        for (name, wf) in &self.config.workflows {
            let base = [Key("workflows"), Key(name.as_str())];
            if name == DYNAMIC_WORKFLOW {
                self.error(&base, format!("`{DYNAMIC_WORKFLOW}` is reserved for planned workflows; rename this workflow"));
            }
            if wf.steps.is_empty() {
                self.error(
                    &[Key("workflows"), Key(name.as_str()), Key("steps")],
                    format!("workflow `{name}` has no steps"),
                );
            }
            if wf.max_iterations == 0 || wf.max_iterations > MAX_ITERATIONS {
                self.error(
                    &[Key("workflows"), Key(name.as_str()), Key("max_iterations")],
                    format!("workflow `{name}`: max_iterations must be between 1 and {MAX_ITERATIONS}, found {}", wf.max_iterations),
                );
            }
            for (i, step) in wf.steps.iter().enumerate() {
                let step_path = |field: &'static str| {
                    [Key("workflows"), Key(name.as_str()), Key("steps"), Index(i), Key(field)]
                };
                let what = format!("workflow `{name}` step {}", i + 1);
                if let Some(msg) = out_of_range(&what, "temperature", step.temperature, 0.0, 2.0) {
                    self.error(&step_path("temperature"), msg);
                }
                if step.max_tokens == Some(0) {
                    self.error(
                        &step_path("max_tokens"),
                        format!(
                            "{what}: max_tokens must be at least 1 (leave it out for the agent's)"
                        ),
                    );
                }
                match self.config.agents.get(&step.agent) {
                    None => self.unknown_agent(&step_path("agent"), &what, &step.agent),
                    Some(agent) if !agent.enabled => self.warn(
                        &step_path("agent"),
                        format!("{what} uses agent `{}`, which is disabled", step.agent),
                    ),
                    Some(_) => {}
                }
                for (j, fb) in step.fallback.iter().enumerate() {
                    if !self.config.agents.contains_key(fb) {
                        let path = [
                            Key("workflows"),
                            Key(name.as_str()),
                            Key("steps"),
                            Index(i),
                            Key("fallback"),
                            Index(j),
                        ];
                        self.unknown_agent(&path, &format!("{what}'s fallback"), fb);
                    }
                }
            }
        }
    }
}

/// The message for a `field` of `what` outside `lo..=hi` (or not a number), if it is.
fn out_of_range(what: &str, field: &str, value: Option<f32>, lo: f32, hi: f32) -> Option<String> {
    let v = value?;
    if v.is_finite() && (lo..=hi).contains(&v) {
        return None;
    }
    Some(format!("{what}: {field} must be from {lo} to {hi}, found {v}"))
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
