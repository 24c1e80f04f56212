//! The commented `troupe.toml` that `troupe init` writes.

/// A complete, commented configuration that parses and validates as it is. Everything in it
/// restates or extends the built-in defaults, so deleting a table changes nothing.
pub const INIT_TEMPLATE: &str = r#"# troupe.toml — configuration for troupe.
#
# troupe works with no file at all: it has built-in agents (claude, codex, gemini, copilot,
# local-code, local-instruct, local-fast) and workflows (default, quick, thorough, review-only, document,
# offline-default, hybrid). This file adds to them: an [agents.NAME] or [workflows.NAME] table
# REPLACES the built-in of that name whole, and [settings] keys override one by one.
#
# Check it with `troupe validate`; list what is configured with `troupe agents` and
# `troupe workflows`. Environment variables override the common fields:
#   TROUPE_OFFLINE, TROUPE_PROJECT, TROUPE_WORKFLOW, TROUPE_PLANNER, TROUPE_MAX_CONCURRENT_RUNS,
#   TROUPE_AGENT_<NAME>_{BASE_URL,MODEL,COMMAND,ENABLED,TIMEOUT_SECS}   (e.g. TROUPE_AGENT_LOCAL_CODE_MODEL)
#   TROUPE_TELEMETRY_{ENDPOINT,SERVICE_NAME,SAMPLE_RATIO}
# TROUPE_HOME sets the data folder and TROUPE_ASSETS the offline assets folder.

[settings]
# Where the store and run records live (default: ~/.local/share/troupe).
# data_dir = "/var/lib/troupe"
# Where scripts/setup.sh installed the offline assets (default: ~/.local/share/troupe/assets,
# shared by every data folder).
# assets_dir = "/opt/troupe/assets"
# The project runs work on (default: the current directory).
# project_path = "."
# Only call agents on this machine, and open no other connection.
offline = false
# The workflow `troupe run` uses when none is named ("dynamic" asks a planner agent).
default_workflow = "default"
# The agent that plans dynamic workflows.
# planner_agent = "local-instruct"
max_concurrent_runs = 8
# Tokens of project memory put into each prompt.
context_token_budget = 1500
# The most tokens asked of one step's answer.
max_output_tokens = 1024
# A review with at most this many suggestions counts as passed.
review_max_suggestions = 3
# The dynamic planner skips agents whose success rate is below this (after enough calls).
min_success_rate = 0.6
min_success_samples = 5
# A folder of prompt templates (implement.md, review.md, refine.md, document.md, plan.md).
# prompts_dir = "prompts"
# The environment variable holding the token `troupe serve` requires off loopback
# (the token itself never goes in this file; --token and $TROUPE_API_TOKEN win).
# api_token_env = "TROUPE_SERVE_TOKEN"
# Further environment variables whose VALUES are masked in logs, traces, the audit trail and
# API answers (API-key variables and names like *_TOKEN, *_SECRET are masked already).
# secret_env = ["MY_SERVICE_CREDENTIAL"]
# Budgets, checked before every call: a call that could cross one is not made and the run
# ends `budget_exceeded`. Costs use the agents' `price` (per 1,000 tokens).
# run_token_budget = 200000
# run_cost_budget = 2.50
# project_token_budget = 5000000
# project_cost_budget = 50.0
# project_budget_days = 30              # project budgets count the last 30 days (default: all)
# What happens to a run's change when it ends green: "ask" (in a terminal: show the summary
# and ask; piped or --json: never), "auto" (apply, like `troupe run --apply`) or "never"
# (`troupe runs apply ID` later).
apply = "ask"

# Validators: the project's tests and linters, run in the run's workspace. Their results go
# into the review and refine prompts, and failing validators mean "changes requested"
# whatever the review says. Commands are split like a shell would but run without one.
[validate]
enabled = true                          # `troupe run --no-validate` turns them off once
# Empty: detected from the project — Cargo.toml → cargo test, go.mod → go test ./...,
# package.json with a test script → npm test, Python tests → pytest (or unittest),
# a Makefile with a test target → make test.
commands = []
# commands = ["cargo test", "cargo clippy -- -D warnings"]
timeout_secs = 600                      # each command, with everything it started, is killed after this
when = "after_change"                   # after_change (every step that changed files) | end

# How HTTP and local models write changes, and what their edits may touch.
[edits]
format = "auto"                         # auto (whole files up to 200 lines, else SEARCH/REPLACE) | whole_file | search_replace
protected = [".env*", "*.pem", "*.key", ".git/**"]   # never written; setting this replaces the list
max_files = 20                          # per step; over a limit, the step's edits are all refused
max_lines = 1500                        # lines added plus removed, per step
candidates = 2                          # when a step's change fails the validators: sample this many more answers, keep one that passes
candidate_temperature = 0.8             # their sampling temperature

# An OpenAI-compatible server. The key is read from the environment variable NAMED here;
# troupe never stores or logs the key itself.
# [agents.gpt]
# kind = "openai"                       # cli | openai | ollama | llamacpp
# base_url = "https://api.openai.com/v1"
# model = "gpt-4.1"
# api_key_env = "OPENAI_API_KEY"
# role = "review"                       # implement | review | refine | document | plan
# timeout_secs = 120
# fallback = ["local-instruct"]         # tried in order when this agent fails transiently
# rate_limit = { requests_per_minute = 60, tokens_per_minute = 90000 }
# retry = { max_attempts = 3, initial_backoff_ms = 500, max_elapsed_secs = 300 }
# breaker = { failure_threshold = 5, recovery_secs = 60 }
# price = { prompt_per_1k = 0.002, completion_per_1k = 0.008 }

# A local Ollama server.
# [agents.ollama-coder]
# kind = "ollama"
# base_url = "http://127.0.0.1:11434"
# model = "qwen2.5-coder:7b"
# role = "implement"
# Generation settings (any HTTP agent; a workflow step may override temperature/max_tokens):
# temperature = 0.2                     # 0 to 2
# top_p = 0.9                           # 0 to 1
# top_k = 40                            # llama.cpp and Ollama only
# min_p = 0.05                          # llama.cpp and Ollama only
# repeat_penalty = 1.1                  # llama.cpp and Ollama only; stops repetition loops
# max_tokens = 1024
# stop = ["```\n\n"]
# seed = 42
# context_tokens = 8192                 # the model's window, when the server cannot say

# Any command-line agent: {prompt}, {workdir} and {model} expand in args; the prompt can go
# to standard input instead with prompt_input = "stdin". Arguments are passed as they are,
# never through a shell.
# [agents.my-agent]
# kind = "cli"
# command = "my-agent"
# args = ["--non-interactive", "--cwd", "{workdir}", "{prompt}"]
# timeout_secs = 600

# OpenTelemetry traces: a span per run, step, agent call, retry, fallback and memory search,
# exported over OTLP/HTTP (protobuf). Off unless an endpoint is set here or in the standard
# OTEL_EXPORTER_OTLP_ENDPOINT variable; in offline mode only an endpoint on this machine is
# used. Spans carry ids, names, token counts, durations and outcomes — never prompts or answers.
# [telemetry]
# endpoint = "http://127.0.0.1:4318"     # /v1/traces is appended unless already there
# headers = { "x-api-key" = "..." }      # secrets: redacted wherever the configuration is shown
# service_name = "troupe"
# sample_ratio = 1.0                     # fraction of runs traced, 0 to 1

# A workflow: steps run in order, each step's output is the next step's input, and the
# steps repeat up to max_iterations times until the review passes.
[workflows.local-review]
description = "Draft locally, review locally"
max_iterations = 2
# validate = { commands = ["python3 -m pytest -q"], when = "end" }   # fields here win over [validate]
steps = [
  { agent = "local-code", role = "implement" },
  { agent = "local-instruct", role = "review" },
  { agent = "local-code", role = "refine", condition = "changes_requested" },
]
"#;
