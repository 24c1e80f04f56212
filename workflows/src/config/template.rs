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
# and TROUPE_HOME sets the data folder.

[settings]
# Where the store, run records and offline assets live (default: ~/.local/share/troupe).
# data_dir = "/var/lib/troupe"
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
steps = [
  { agent = "local-code", role = "implement" },
  { agent = "local-instruct", role = "review" },
  { agent = "local-code", role = "refine", condition = "changes_requested" },
]
"#;
