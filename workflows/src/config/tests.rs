use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;

use super::*;

fn parse(text: &str) -> (Config, Problems) {
    Config::parse_toml(text, Path::new("troupe.toml"))
}

/// Parse and validate like `Config::load` does, from a file with `text`.
fn load(text: &str) -> LoadedConfig {
    load_env(text, [])
}

fn load_env<const N: usize>(text: &str, env: [(&str, &str); N]) -> LoadedConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("troupe.toml");
    std::fs::write(&path, text).unwrap();
    let env = env.map(|(k, v)| (k.to_string(), v.to_string()));
    let mut loaded = Config::load_from(ConfigSource::Flag(path.clone()), env).unwrap();
    // Make locations independent of the temporary folder.
    for p in &mut loaded.problems.0 {
        if let Location::File { path: ref mut lp, .. } = p.location {
            assert_eq!(lp, &path);
            *lp = PathBuf::from("troupe.toml");
        }
    }
    loaded
}

fn messages(problems: &Problems) -> Vec<String> {
    problems.0.iter().map(|p| p.to_string()).collect()
}

#[test]
fn builtin_defaults_are_complete_and_valid() {
    let c = Config::builtin();
    let agents: Vec<_> = c.agents.keys().cloned().collect();
    assert_eq!(
        agents,
        ["claude", "codex", "copilot", "gemini", "local-code", "local-fast", "local-instruct"]
    );
    let workflows: Vec<_> = c.workflows.keys().cloned().collect();
    assert_eq!(
        workflows,
        ["default", "document", "hybrid", "offline-default", "quick", "review-only", "thorough"]
    );
    let problems = c.validate();
    assert!(problems.0.is_empty(), "built-ins have problems: {problems}");
    // The offline workflow only uses local agents; the default one only CLI agents.
    let offline = c.workflow("offline-default").unwrap();
    assert!(c.agents_of(offline).iter().all(|a| c.agent(a).unwrap().is_local()));
    assert!(!c.agent("claude").unwrap().is_local());
}

#[test]
fn init_template_parses_and_validates_cleanly() {
    let loaded = load(INIT_TEMPLATE);
    assert!(loaded.problems.0.is_empty(), "template problems:\n{}", loaded.problems);
    assert!(loaded.config.workflows.contains_key("local-review"));
    // The template restates the defaults: settings are unchanged.
    assert_eq!(loaded.config.settings, Settings::default());
}

#[test]
fn a_file_adds_agents_and_replaces_builtins_by_name() {
    let (c, problems) = parse(
        r#"
[agents.local-code]
kind = "ollama"
base_url = "http://127.0.0.1:11434"
model = "qwen2.5-coder:7b"

[agents.gpt]
kind = "openai"
base_url = "https://api.openai.com/v1"
model = "gpt-4.1"
api_key_env = "OPENAI_API_KEY"
"#,
    );
    assert!(problems.0.is_empty(), "{problems}");
    let local = c.agent("local-code").unwrap();
    assert_eq!(local.kind, AgentKind::Ollama);
    // Replaced whole: the built-in's managed server and role are gone.
    assert_eq!(local.server, None);
    assert_eq!(local.role, None);
    assert_eq!(c.agent("gpt").unwrap().api_key_env.as_deref(), Some("OPENAI_API_KEY"));
    // Built-ins not named are kept.
    assert!(c.agent("claude").is_some());
    assert_eq!(c.workflows.len(), Config::builtin().workflows.len());
}

#[test]
fn settings_override_key_by_key() {
    let (c, problems) = parse("[settings]\noffline = true\ncontext_token_budget = 900\n");
    assert!(problems.0.is_empty(), "{problems}");
    assert!(c.settings.offline);
    assert_eq!(c.settings.context_token_budget, 900);
    assert_eq!(c.settings.default_workflow, "default");
}

#[test]
fn syntax_errors_name_line_and_column() {
    let loaded = load("[settings]\noffline = true\nbroken = = 3\n");
    let msgs = messages(&loaded.problems);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].starts_with("troupe.toml:3:"), "{}", msgs[0]);
    assert!(msgs[0].contains("invalid TOML"), "{}", msgs[0]);
}

#[test]
fn three_mistakes_are_all_reported_with_positions() {
    let text = r#"[settings]
default_workflow = "default"

[agents.broken]
base_url = "http://127.0.0.1:9000/v1"

[agents.slow]
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
model = "m"
timeout_secs = "soon"

[workflows.mine]
steps = [
  { agent = "codx", role = "implement" },
]
"#;
    let loaded = load(text);
    let msgs = messages(&loaded.problems);
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    // Missing field: at the agent's table.
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:4:") && m.contains("missing field `kind`")),
        "{msgs:#?}"
    );
    // Wrong type: at the value.
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("troupe.toml:11:16")
                && m.contains("`timeout_secs`: invalid type")),
        "{msgs:#?}"
    );
    // Unknown agent: at the step's agent, with a suggestion.
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:15:13")
            && m.contains("unknown agent `codx`")
            && m.contains("did you mean `codex`")),
        "{msgs:#?}"
    );
}

#[test]
fn unknown_keys_are_errors_not_silently_ignored() {
    let loaded =
        load("[agents.x]\nkind = \"cli\"\ncommand = \"x\"\ntiemout_secs = 5\n\n[tools]\na = 1\n");
    let msgs = messages(&loaded.problems);
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:4:1") && m.contains("tiemout_secs")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("troupe.toml:6:2") && m.contains("unknown section `tools`")),
        "{msgs:#?}"
    );
}

#[test]
fn fallback_cycles_and_bad_fallbacks_are_reported() {
    let text = r#"
[agents.a]
kind = "cli"
command = "a"
fallback = ["b"]

[agents.b]
kind = "cli"
command = "b"
fallback = ["c"]

[agents.c]
kind = "cli"
command = "c"
fallback = ["a", "nobody", "c"]
"#;
    let loaded = load(text);
    let msgs = messages(&loaded.problems);
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(
        msgs.iter()
            .any(|m| m.contains("fallback cycle: a → b → c → a")
                && m.starts_with("troupe.toml:5:12")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("unknown agent `nobody`") && m.starts_with("troupe.toml:15:18")),
        "{msgs:#?}"
    );
    assert!(msgs.iter().any(|m| m.contains("lists itself as a fallback")), "{msgs:#?}");
}

#[test]
fn every_agent_rule_is_checked() {
    let text = r#"
[agents.nocmd]
kind = "cli"

[agents.nourl]
kind = "openai"
model = "m"

[agents.nomodel]
kind = "ollama"
base_url = "http://127.0.0.1:11434"

[agents.badurl]
kind = "llamacpp"
base_url = "ftp://127.0.0.1/"

[agents.key]
kind = "openai"
base_url = "https://example.com/v1"
model = "m"
api_key_env = "sk-live-123"

[agents.zero]
kind = "cli"
command = "z"
timeout_secs = 0
retry = { max_attempts = 0 }
breaker = { failure_threshold = 0 }
rate_limit = { requests_per_minute = 0 }

[agents.remote-server]
kind = "llamacpp"
base_url = "http://10.0.0.5:8080/v1"
server = { command = "llama-server" }
"#;
    let loaded = load(text);
    let msgs = messages(&loaded.problems);
    let expect = [
        "`nocmd` is a cli agent but has no `command`",
        "`nourl` is a openai agent but has no `base_url`",
        "`nomodel` is a ollama agent but has no `model`",
        "base_url must be an http(s) URL",
        "api_key_env must be the NAME",
        "timeout_secs must be at least 1",
        "retry.max_attempts must be at least 1",
        "breaker.failure_threshold must be at least 1",
        "rate_limit.requests_per_minute must be at least 1",
        "managed `server` but its base_url is not on a loopback address",
    ];
    for e in expect {
        assert!(msgs.iter().any(|m| m.contains(e)), "missing {e:?} in {msgs:#?}");
    }
    assert_eq!(loaded.problems.errors().count(), expect.len(), "{msgs:#?}");
}

#[test]
fn workflow_rules_are_checked() {
    let text = r#"
[settings]
default_workflow = "nope"
planner_agent = "ghost"

[workflows.empty]
steps = []

[workflows.many]
max_iterations = 0
steps = [{ agent = "codex", role = "implement", fallback = ["ghost"] }]

[workflows.dynamic]
steps = [{ agent = "codex", role = "implement" }]

[workflows.badrole]
steps = [{ agent = "codex", role = "dance" }]
"#;
    let loaded = load(text);
    let msgs = messages(&loaded.problems);
    let expect = [
        "default_workflow `nope` is not a workflow",
        "planner_agent names unknown agent `ghost`",
        "workflow `empty` has no steps",
        "max_iterations must be between 1 and 50",
        "step 1's fallback names unknown agent `ghost`",
        "`dynamic` is reserved",
        "unknown variant `dance`",
    ];
    for e in expect {
        assert!(msgs.iter().any(|m| m.contains(e)), "missing {e:?} in {msgs:#?}");
    }
    assert_eq!(loaded.problems.errors().count(), expect.len(), "{msgs:#?}");
}

#[test]
fn a_broken_agent_is_not_replaced_by_the_builtin() {
    // `codex` fails to parse: the workflows that use it must be reported, not run the built-in.
    let loaded = load("[agents.codex]\nkind = \"cli\"\ncommand = 5\n");
    let msgs = messages(&loaded.problems);
    assert!(msgs.iter().any(|m| m.starts_with("troupe.toml:3:11")), "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.contains("workflow `default` step 1 names unknown agent `codex`")),
        "{msgs:#?}"
    );
    assert!(loaded.into_valid().is_err());
}

#[test]
fn disabled_agents_in_workflows_are_warnings() {
    let loaded = load("[agents.codex]\nkind = \"cli\"\ncommand = \"codex\"\nenabled = false\n");
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    let warnings: Vec<_> = loaded.problems.warnings().map(|p| p.message.clone()).collect();
    assert!(
        warnings.iter().any(|w| w.contains("uses agent `codex`, which is disabled")),
        "{warnings:?}"
    );
}

#[test]
fn environment_overrides_common_fields() {
    let loaded = load_env(
        "",
        [
            ("TROUPE_OFFLINE", "yes"),
            ("TROUPE_WORKFLOW", "quick"),
            ("TROUPE_AGENT_LOCAL_CODE_MODEL", "other"),
            ("TROUPE_AGENT_LOCAL_CODE_BASE_URL", "http://127.0.0.1:9999/v1"),
            ("TROUPE_AGENT_CODEX_ENABLED", "false"),
            ("TROUPE_AGENT_CLAUDE_TIMEOUT_SECS", "42"),
            ("UNRELATED", "x"),
        ],
    );
    let c = &loaded.config;
    assert!(c.settings.offline);
    assert_eq!(c.settings.default_workflow, "quick");
    assert_eq!(c.agent("local-code").unwrap().model.as_deref(), Some("other"));
    assert_eq!(
        c.agent("local-code").unwrap().base_url.as_deref(),
        Some("http://127.0.0.1:9999/v1")
    );
    assert!(!c.agent("codex").unwrap().enabled);
    assert_eq!(c.agent("claude").unwrap().timeout_secs, 42);
}

#[test]
fn bad_environment_overrides_are_reported() {
    let loaded = load_env(
        "",
        [
            ("TROUPE_OFFLINE", "maybe"),
            ("TROUPE_AGENT_NOBODY_MODEL", "x"),
            ("TROUPE_AGENT_CODEX_COLOUR", "red"),
            ("TROUPE_MAX_CONCURRENT_RUNS", "many"),
        ],
    );
    let msgs = messages(&loaded.problems);
    assert_eq!(loaded.problems.errors().count(), 4, "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("$TROUPE_OFFLINE: error: expected true or false")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("$TROUPE_AGENT_NOBODY_MODEL")
            && m.contains("no agent matches `NOBODY`")),
        "{msgs:#?}"
    );
    assert!(msgs.iter().any(|m| m.starts_with("$TROUPE_AGENT_CODEX_COLOUR")), "{msgs:#?}");
}

#[test]
fn resolution_order_is_flag_env_cwd_user() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag.toml");
    let env = dir.path().join("env.toml");
    let user = dir.path().join("user.toml");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    for p in [&flag, &env, &user] {
        std::fs::write(p, "").unwrap();
    }
    let r = |f: Option<&Path>, e: Option<&Path>| {
        resolve_config_path(f, e.map(|p| p.as_os_str().to_owned()), &cwd, Some(user.clone()))
            .unwrap()
    };
    assert_eq!(r(Some(&flag), Some(&env)), ConfigSource::Flag(flag.clone()));
    assert_eq!(r(None, Some(&env)), ConfigSource::Env(env.clone()));
    assert_eq!(r(None, None), ConfigSource::UserDir(user.clone()));
    std::fs::write(cwd.join("troupe.toml"), "").unwrap();
    assert_eq!(r(None, None), ConfigSource::CurrentDir(cwd.join("troupe.toml")));
    let none = resolve_config_path(None, None, dir.path(), None).unwrap();
    assert_eq!(none, ConfigSource::Builtin);
    // Named files must exist.
    let missing = dir.path().join("missing.toml");
    let err = resolve_config_path(Some(&missing), None, &cwd, None).unwrap_err();
    assert!(err.to_string().contains("missing.toml (from --config) does not exist"), "{err}");
    let err = resolve_config_path(None, Some(missing.into_os_string()), &cwd, None).unwrap_err();
    assert!(err.to_string().contains("$TROUPE_CONFIG"), "{err}");
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("abc", 0), (1, 1));
    assert_eq!(line_col("a\nbc", 3), (2, 2));
    assert_eq!(line_col("é\nx", 3), (2, 1));
    assert_eq!(line_col("éa", 2), (1, 2));
    assert_eq!(line_col("x", 99), (1, 2));
}

#[test]
fn config_round_trips_through_json() {
    let c = Config::builtin();
    let json = serde_json::to_string(&c).unwrap();
    let back: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn telemetry_table_parses_with_defaults_off() {
    assert!(Config::builtin().telemetry.is_empty());
    let loaded = load(
        r#"
[telemetry]
endpoint = "http://127.0.0.1:4318"
headers = { x-api-key = "s3cr3t" }
service_name = "troupe-dev"
sample_ratio = 0.25
"#,
    );
    assert!(loaded.problems.0.is_empty(), "{}", loaded.problems);
    let t = &loaded.config.telemetry;
    assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert_eq!(t.headers["x-api-key"], "s3cr3t");
    assert_eq!(t.service_name.as_deref(), Some("troupe-dev"));
    assert_eq!(t.sample_ratio, Some(0.25));
    // Header values are secrets: never in debug output.
    assert!(!format!("{:?}", loaded.config).contains("s3cr3t"));
    let opts = loaded.config.telemetry_options();
    assert_eq!(opts.endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert!(!opts.offline);
    // A configuration with telemetry round-trips.
    let json = serde_json::to_string(&loaded.config).unwrap();
    let back: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, loaded.config);
}

#[test]
fn telemetry_mistakes_are_reported_with_positions() {
    let loaded = load(
        r#"[telemetry]
endpoint = "grpc://collector:4317"
sample_ratio = 1.5
headers = { "bad header" = "x" }
colour = "blue"
"#,
    );
    let msgs = messages(&loaded.problems);
    // The unknown key stops the table from parsing: one error, with its position.
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert!(msgs[0].starts_with("troupe.toml:5:1: error: in [telemetry]"), "{msgs:#?}");
    assert!(msgs[0].contains("colour"), "{msgs:#?}");

    let loaded = load(
        r#"[telemetry]
endpoint = "grpc://collector:4317"
sample_ratio = 1.5
headers = { "bad header" = "x" }
"#,
    );
    let msgs = messages(&loaded.problems);
    assert_eq!(loaded.problems.errors().count(), 3, "{msgs:#?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:2:12: error:") && m.contains("http://")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:3:16: error: sample_ratio")),
        "{msgs:#?}"
    );
    assert!(msgs.iter().any(|m| m.contains("`bad header`")), "{msgs:#?}");
}

#[test]
fn offline_with_a_remote_telemetry_endpoint_is_a_warning() {
    let loaded = load(
        r#"[settings]
offline = true
[telemetry]
endpoint = "https://otel.example.com"
"#,
    );
    assert!(!loaded.problems.has_errors(), "{}", loaded.problems);
    assert!(
        loaded.problems.warnings().any(|p| p.message.contains("no spans will be exported")),
        "{}",
        loaded.problems
    );
}

#[test]
fn telemetry_environment_overrides() {
    let loaded = load_env(
        "[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n",
        [
            ("TROUPE_TELEMETRY_ENDPOINT", "http://localhost:9999"),
            ("TROUPE_TELEMETRY_SERVICE_NAME", "svc"),
            ("TROUPE_TELEMETRY_SAMPLE_RATIO", "0.5"),
        ],
    );
    assert!(loaded.problems.0.is_empty(), "{}", loaded.problems);
    let t = &loaded.config.telemetry;
    assert_eq!(t.endpoint.as_deref(), Some("http://localhost:9999"));
    assert_eq!(t.service_name.as_deref(), Some("svc"));
    assert_eq!(t.sample_ratio, Some(0.5));
    // An empty endpoint turns the configured one off; a bad ratio is an error.
    let loaded = load_env(
        "[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n",
        [("TROUPE_TELEMETRY_ENDPOINT", ""), ("TROUPE_TELEMETRY_SAMPLE_RATIO", "2")],
    );
    assert_eq!(loaded.config.telemetry.endpoint, None);
    let msgs = messages(&loaded.problems);
    assert!(
        msgs.iter().any(|m| m.starts_with("$TROUPE_TELEMETRY_SAMPLE_RATIO: error")),
        "{msgs:#?}"
    );
}

#[test]
fn the_local_agents_run_qwen_with_settings_for_code() {
    let c = Config::builtin();
    let code = c.agent("local-code").unwrap();
    let instruct = c.agent("local-instruct").unwrap();
    let fast = c.agent("local-fast").unwrap();
    let model_arg = |a: &AgentConfig| {
        let args = &a.server.as_ref().unwrap().args;
        args[args.iter().position(|x| x == "-m").unwrap() + 1].clone()
    };
    assert_eq!(model_arg(code), "{assets}/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf");
    assert_eq!(model_arg(fast), "{assets}/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    // Same model, same server; another model, another server (both can stay warm).
    assert_eq!(code.base_url, instruct.base_url);
    assert_eq!(model_arg(code), model_arg(instruct));
    assert_ne!(code.base_url, fast.base_url);
    for a in [code, instruct, fast] {
        assert!(a.temperature.unwrap() <= 0.2 && a.repeat_penalty == Some(1.1), "{a:?}");
        assert_eq!(a.max_tokens, Some(1024));
        let args = &a.server.as_ref().unwrap().args;
        assert!(args.windows(2).any(|w| w == ["-t", "{threads}"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-c", "8192"]), "{args:?}");
    }
}

#[test]
fn generation_settings_are_parsed_and_checked_with_locations() {
    let loaded = load(
        r#"[agents.coder]
kind = "llamacpp"
base_url = "http://127.0.0.1:9/v1"
temperature = 2.5
top_p = 0.9
top_k = 40
min_p = 1.5
repeat_penalty = 1.1
max_tokens = 0
stop = ["END", ""]
seed = 7
context_tokens = 100
max_concurrent_calls = 0

[agents.gpt]
kind = "openai"
base_url = "https://api.example.com/v1"
model = "m"
top_k = 20

[workflows.w]
steps = [{ agent = "coder", role = "implement", temperature = -1.0, max_tokens = 0 }]
"#,
    );
    let msgs = messages(&loaded.problems);
    let has = |prefix: &str, needle: &str| {
        msgs.iter().any(|m| m.starts_with(prefix) && m.contains(needle))
    };
    assert!(
        has("troupe.toml:4:15: error", "temperature must be from 0 to 2, found 2.5"),
        "{msgs:#?}"
    );
    assert!(has("troupe.toml:7:9: error", "min_p must be from 0 to 1"), "{msgs:#?}");
    assert!(has("troupe.toml:9:14: error", "max_tokens must be at least 1"), "{msgs:#?}");
    assert!(has("troupe.toml:10:16: error", "stop sequence must not be empty"), "{msgs:#?}");
    assert!(has("troupe.toml:12:18: error", "context_tokens must be from 256"), "{msgs:#?}");
    assert!(
        has("troupe.toml:13:24: error", "max_concurrent_calls must be at least 1"),
        "{msgs:#?}"
    );
    assert!(has("troupe.toml:19:9: warning", "top_k is not part of the OpenAI API"), "{msgs:#?}");
    assert!(
        has("troupe.toml:22:", "step 1: temperature must be from 0 to 2, found -1"),
        "{msgs:#?}"
    );
    assert!(has("troupe.toml:22:", "step 1: max_tokens must be at least 1"), "{msgs:#?}");
    assert!(!msgs.iter().any(|m| m.contains("top_p") || m.contains("repeat_penalty")), "{msgs:#?}");
    let coder = loaded.config.agent("coder").unwrap();
    assert_eq!((coder.top_k, coder.seed), (Some(40), Some(7)));
    assert_eq!(coder.stop, ["END", ""]);

    // A value of the wrong type names the key and where it is.
    let loaded = load(
        "[agents.coder]\nkind = \"llamacpp\"\nbase_url = \"http://127.0.0.1:9/v1\"\ntemperature = \"hot\"\n",
    );
    let msgs = messages(&loaded.problems);
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:4:15") && m.contains("temperature")),
        "{msgs:#?}"
    );
}

#[test]
fn steps_override_temperature_and_max_tokens() {
    let (c, problems) = parse(
        "[workflows.w]\nsteps = [{ agent = \"local-code\", role = \"implement\", temperature = 0.9, max_tokens = 64 }]\n",
    );
    assert!(problems.0.is_empty(), "{problems}");
    let step = &c.workflow("w").unwrap().steps[0];
    let base = troupe_agent_config::GenerationOptions {
        temperature: Some(0.0),
        max_tokens: Some(4096),
        seed: Some(1),
        ..Default::default()
    };
    let o = step.apply_overrides(base.clone());
    assert_eq!((o.temperature, o.max_tokens, o.seed), (Some(0.9), Some(64), Some(1)));
    let plain = StepConfig::new("local-code", Role::Implement);
    assert_eq!(plain.apply_overrides(base.clone()), base);
}

#[test]
fn generation_settings_take_environment_overrides() {
    let loaded = load_env(
        "",
        [
            ("TROUPE_AGENT_LOCAL_CODE_TEMPERATURE", "0.7"),
            ("TROUPE_AGENT_LOCAL_CODE_MAX_TOKENS", "300"),
            ("TROUPE_AGENT_LOCAL_FAST_CONTEXT_TOKENS", "4096"),
            ("TROUPE_AGENT_LOCAL_INSTRUCT_TEMPERATURE", "warm"),
        ],
    );
    let code = loaded.config.agent("local-code").unwrap();
    assert_eq!((code.temperature, code.max_tokens), (Some(0.7), Some(300)));
    assert_eq!(loaded.config.agent("local-fast").unwrap().context_tokens, Some(4096));
    let msgs = messages(&loaded.problems);
    assert!(
        msgs.iter()
            .any(|m| m.contains("TROUPE_AGENT_LOCAL_INSTRUCT_TEMPERATURE") && m.contains("warm")),
        "{msgs:#?}"
    );
}

#[test]
fn validate_edits_and_apply_parse_with_defaults_when_absent() {
    let (c, problems) = parse("");
    assert!(problems.0.is_empty(), "{problems}");
    assert_eq!(c.validate, ValidateConfig::default());
    assert!(c.validate.enabled && c.validate.commands.is_empty());
    assert_eq!((c.validate.timeout_secs, c.validate.when), (600, ValidateWhen::AfterChange));
    assert_eq!(c.edits.format, EditFormat::Auto);
    assert_eq!(c.edits.protected, [".env*", "*.pem", "*.key", ".git/**"]);
    assert_eq!((c.edits.max_files, c.edits.max_lines), (20, 1500));
    assert_eq!(c.settings.apply, ApplyMode::Ask);

    let (c, problems) = parse(
        r#"
[settings]
apply = "never"

[validate]
commands = ["cargo test", "cargo clippy -- -D warnings"]
timeout_secs = 120
when = "end"

[edits]
format = "search_replace"
protected = ["secrets/**"]
max_files = 5
"#,
    );
    assert!(problems.0.is_empty(), "{problems}");
    assert_eq!(c.settings.apply, ApplyMode::Never);
    assert_eq!(
        c.validate,
        ValidateConfig {
            enabled: true,
            commands: vec!["cargo test".into(), "cargo clippy -- -D warnings".into()],
            timeout_secs: 120,
            when: ValidateWhen::End,
        }
    );
    assert_eq!(c.edits.format, EditFormat::SearchReplace);
    assert_eq!(c.edits.protected, ["secrets/**"]);
    assert_eq!((c.edits.max_files, c.edits.max_lines), (5, 1500));
}

#[test]
fn a_workflow_validate_override_merges_over_the_global_one() {
    let loaded = load(
        r#"
[validate]
commands = ["make check"]
timeout_secs = 30

[workflows.py]
steps = [{ agent = "local-code", role = "implement" }]
validate = { commands = ["python3 -m pytest -q"], when = "end" }

[workflows.off]
steps = [{ agent = "local-code", role = "implement" }]
validate = { enabled = false }
"#,
    );
    assert!(loaded.problems.0.is_empty(), "{}", loaded.problems);
    let c = &loaded.config;
    let py = c.validate_for(c.workflow("py").unwrap());
    assert_eq!(py.commands, ["python3 -m pytest -q"]);
    assert_eq!((py.timeout_secs, py.when, py.enabled), (30, ValidateWhen::End, true));
    let off = c.validate_for(c.workflow("off").unwrap());
    assert_eq!((off.enabled, off.commands.clone()), (false, vec!["make check".to_string()]));
    // Without an override, the global table as it is.
    assert_eq!(c.validate_for(c.workflow("default").unwrap()), c.validate);
}

#[test]
fn validate_and_edits_mistakes_are_reported_with_locations() {
    let loaded = load(
        r#"[validate]
when = "sometimes"

[edits]
max_lines = -1
"#,
    );
    let got = messages(&loaded.problems);
    assert!(
        got.iter()
            .any(|m| m
                .starts_with("troupe.toml:2:8: error: in [validate]: unknown variant `sometimes`")),
        "{got:#?}"
    );
    assert!(got.iter().any(|m| m.starts_with("troupe.toml:5:13: error: in [edits]:")), "{got:#?}");

    let loaded = load(
        r#"[validate]
timeout_secs = -1
"#,
    );
    let got = messages(&loaded.problems);
    assert!(
        got.iter().any(|m| m.starts_with("troupe.toml:2:16: error: in [validate]:")),
        "{got:#?}"
    );

    let loaded = load(
        r#"[validate]
comands = ["cargo test"]

[edits]
format = "diff"

[settings]
apply = "yes"
"#,
    );
    let got = messages(&loaded.problems);
    assert!(
        got.iter().any(
            |m| m.starts_with("troupe.toml:2:1: error: in [validate]: unknown field `comands`")
        ),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|m| m.starts_with("troupe.toml:5:10: error: in [edits]: unknown variant `diff`")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|m| m.starts_with("troupe.toml:8:9: error: in [settings]: unknown variant `yes`")),
        "{got:#?}"
    );

    // Values a type check accepts but that make no sense.
    let loaded = load(
        r#"[validate]
timeout_secs = 0
commands = ["cargo test", " "]

[edits]
max_files = 0
protected = [""]

[workflows.w]
steps = [{ agent = "local-code", role = "implement" }]
validate = { timeout_secs = 0, when = "never" }
"#,
    );
    let got = messages(&loaded.problems);
    for want in [
        "troupe.toml:2:16: error: validate.timeout_secs must be at least 1 second",
        "troupe.toml:3:27: error: validate.commands entries are commands",
        "troupe.toml:6:13: error: edits.max_files must be at least 1",
        "troupe.toml:7:14: error: edits.protected entries are globs",
        "troupe.toml:11:",
    ] {
        assert!(got.iter().any(|m| m.starts_with(want)), "{want}\n{got:#?}");
    }
    assert!(got.iter().any(|m| m.contains("[workflows.w]") && m.contains("never")), "{got:#?}");

    let loaded = load(
        r#"[workflows.w]
steps = [{ agent = "local-code", role = "implement" }]
validate = { timeout_secs = 0, commands = [""] }
"#,
    );
    let got = messages(&loaded.problems);
    assert!(
        got.iter().any(|m| m.starts_with("troupe.toml:3:29: error: validate.timeout_secs")),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|m| m.starts_with("troupe.toml:3:44: error: validate.commands entries")),
        "{got:#?}"
    );
}

#[test]
fn the_template_restates_the_validate_and_edits_defaults() {
    let loaded = load(INIT_TEMPLATE);
    assert_eq!(loaded.config.validate, ValidateConfig::default());
    assert_eq!(loaded.config.edits, EditsConfig::default());
    assert_eq!(loaded.config.settings.apply, ApplyMode::Ask);
}

#[test]
fn time_bounds_are_checked_where_they_are_written() {
    let text = r#"[agents.slow]
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
model = "m"
timeout_secs = 60
idle_timeout_secs = 0
first_byte_timeout_secs = 120
"#;
    let loaded = load(text);
    let msgs = messages(&loaded.problems);
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:6:")
            && m.contains("idle_timeout_secs must be at least 1")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("troupe.toml:7:")
            && m.contains("first_byte_timeout_secs = 120 is longer than timeout_secs = 60")),
        "{msgs:#?}"
    );
    assert_eq!(loaded.problems.errors().count(), 1, "{msgs:#?}");
}
