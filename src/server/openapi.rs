//! The OpenAPI 3 description of the API, written by hand (served at `/api/openapi.json`).

use serde_json::{Value, json};

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn err(description: &str) -> Value {
    ok(description, json!({ "$ref": "#/components/schemas/Error" }))
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": "The run's id or a unique prefix of it", "schema": { "type": "string" } })
}

fn obj() -> Value {
    json!({ "type": "object" })
}

/// The document.
pub fn document() -> Value {
    let secured = json!([{ "bearer": [] }]);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "troupe",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Run many LLM agents together through planned, resilient workflows. Every failure answers {\"error\": {\"code\", \"message\"}}. On a loopback address no token is needed; elsewhere every /api route and /metrics need `Authorization: Bearer TOKEN`."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string", "example": "no_such_run" },
                            "message": { "type": "string" },
                            "problems": { "type": "array", "items": { "$ref": "#/components/schemas/Problem" } }
                        }
                    } }
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "severity": { "type": "string", "enum": ["error", "warning"] },
                        "location": { "type": "object" },
                        "at": { "type": "string", "example": "/home/me/troupe.toml:12:5" },
                        "message": { "type": "string" },
                        "text": { "type": "string" }
                    }
                },
                "ExecuteRequest": {
                    "type": "object",
                    "required": ["task"],
                    "additionalProperties": false,
                    "properties": {
                        "task": { "type": "string", "description": "What to do, in your words" },
                        "workflow": { "type": "string", "description": "A workflow name; the default one when absent; `dynamic` plans one" },
                        "max_iterations": { "type": "integer", "minimum": 1 },
                        "offline": { "type": "boolean", "description": "Only agents on this machine" },
                        "project": { "type": "string", "description": "The project folder (on the server)" },
                        "conversation": { "type": "string", "description": "Continue a conversation: earlier runs with the same id are put into the prompt" },
                        "budget_tokens": { "type": "integer", "minimum": 1, "description": "Most tokens the run may use [default: settings.run_token_budget]; a call that could cross it is not made and the run ends budget_exceeded" },
                        "budget_cost": { "type": "number", "exclusiveMinimum": 0, "description": "Most cost the run may incur [default: settings.run_cost_budget]" },
                        "in_place": { "type": "boolean", "description": "Work in the project folder itself (a checkpoint is kept so revert works) instead of the run's own workspace" },
                        "no_validate": { "type": "boolean", "description": "Run no validators (the project's tests and linters) on the changes" },
                        "apply": { "type": "boolean", "description": "Apply the change to the project when the run completes green" }
                    }
                },
                "Run": { "type": "object", "description": "A run record: id, task, workflow_name, state (pending | in_progress | completed | failed | cancelled | budget_exceeded), created_at, started_at, finished_at, iterations, output, error, tokens, cost; workspace (kind, dir, project, base, branch, head, applied), files (the change's files with lines added and removed), validators, validators_source, validation (the latest validators' results), verified, in_place, no_validate, apply" },
                "Step": { "type": "object", "description": "A step record: pos {iteration, step}, role, agent, answered_by, model, state, response, verdict, note, tokens, retries, fallback_from, latency_ms" },
                "RunEvent": { "type": "object", "description": "Tagged by `type`: run_started, planned, step_started, chunk, agent, changed, validate_started, validate_finished, step_finished, applied, run_finished" },
                "RunStats": {
                    "type": "object",
                    "properties": {
                        "by_state": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "Runs per state" },
                        "average_duration_secs": { "type": "number", "nullable": true, "description": "Of ended runs" },
                        "tokens": { "type": "object", "properties": { "prompt": { "type": "integer" }, "completion": { "type": "integer" } } }
                    }
                }
            }
        },
        "paths": {
            "/health": { "get": {
                "summary": "Liveness", "security": [],
                "responses": { "200": ok("The process is up", json!({ "type": "object", "properties": { "status": { "type": "string", "enum": ["ok"] } } })) }
            } },
            "/ready": { "get": {
                "summary": "Readiness: configuration loaded, store open, at least one agent usable", "security": [],
                "responses": { "200": ok("Ready", obj()), "503": err("Not ready, with the reason") }
            } },
            "/metrics": { "get": {
                "summary": "Prometheus metrics", "security": secured,
                "responses": { "200": { "description": "Prometheus text exposition", "content": { "text/plain": { "schema": { "type": "string" } } } }, "401": err("Token missing or wrong") }
            } },
            "/api/agents": { "get": {
                "summary": "Agents with role, kind, availability, breaker state and success rate", "security": secured,
                "responses": { "200": ok("Agents", json!({ "type": "array", "items": obj() })), "401": err("Token missing or wrong") }
            } },
            "/api/workflows": { "get": {
                "summary": "Workflows with their steps", "security": secured,
                "responses": { "200": ok("Workflows", json!({ "type": "array", "items": obj() })), "401": err("Token missing or wrong") }
            } },
            "/api/execute": { "post": {
                "summary": "Start a run", "security": secured,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExecuteRequest" } } } },
                "responses": {
                    "202": ok("Started", json!({ "type": "object", "properties": { "run_id": { "type": "string" }, "events": { "type": "string" } } })),
                    "400": err("Bad JSON, unknown field, empty task, unknown workflow, or a request that cannot run (offline with cloud-only steps)"),
                    "401": err("Token missing or wrong"),
                    "413": err("Body larger than 256 KiB")
                }
            } },
            "/api/runs": { "get": {
                "summary": "Runs, newest first", "security": secured,
                "parameters": [
                    { "name": "limit", "in": "query", "schema": { "type": "integer" } },
                    { "name": "state", "in": "query", "schema": { "type": "string", "enum": ["pending", "in_progress", "completed", "failed", "cancelled", "budget_exceeded"] } }
                ],
                "responses": { "200": ok("Runs", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Run" } })), "400": err("Bad query"), "401": err("Token missing or wrong") }
            } },
            "/api/runs/stats": { "get": {
                "summary": "Counts by state, average duration of ended runs and tokens over every stored run (what `troupe runs stats` prints)", "security": secured,
                "responses": { "200": ok("Statistics", json!({ "$ref": "#/components/schemas/RunStats" })), "401": err("Token missing or wrong") }
            } },
            "/api/runs/{id}": { "get": {
                "summary": "One run with its steps", "security": secured,
                "parameters": [id_param(), { "name": "prompts", "in": "query", "schema": { "type": "boolean" }, "description": "Include each step's full prompt" }],
                "responses": {
                    "200": ok("The run", json!({ "type": "object", "properties": { "run": { "$ref": "#/components/schemas/Run" }, "live": { "type": "boolean" }, "steps": { "type": "array", "items": { "$ref": "#/components/schemas/Step" } }, "checks": { "type": "array", "items": obj(), "description": "Each run of the validators: after (the step checked), commit, state, commands, report (per command: outcome, duration, failing tests, output tail)" } } })),
                    "404": err("No such run"), "401": err("Token missing or wrong")
                }
            } },
            "/api/runs/{id}/events": { "get": {
                "summary": "The run's events as Server-Sent Events, from the start (or after `Last-Event-ID`), then live; the stream ends after run_finished", "security": secured,
                "parameters": [id_param(), { "name": "Last-Event-ID", "in": "header", "schema": { "type": "integer" }, "description": "Continue after this event (sent by reconnecting EventSource clients)" }],
                "responses": {
                    "200": { "description": "`event: <type>` and `data: <RunEvent JSON>` per event", "content": { "text/event-stream": { "schema": { "$ref": "#/components/schemas/RunEvent" } } } },
                    "404": err("No such run"), "401": err("Token missing or wrong")
                }
            } },
            "/api/runs/{id}/cancel": { "post": {
                "summary": "Cancel a run (its running step's process is killed)", "security": secured,
                "parameters": [id_param()],
                "responses": { "202": ok("Cancelling", obj()), "404": err("No such run"), "409": err("The run has already ended"), "401": err("Token missing or wrong") }
            } },
            "/api/runs/{id}/audit": { "get": {
                "summary": "The run's audit trail: every prompt and response as sent and received, retries, fallbacks, memory used, calls refused by a budget (secrets masked)", "security": secured,
                "parameters": [id_param()],
                "responses": { "200": ok("Entries, oldest first", json!({ "type": "array", "items": obj() })), "404": err("No such run, or it has no audit trail"), "401": err("Token missing or wrong") }
            } },
            "/api/usage": { "get": {
                "summary": "Tokens and cost per project, agent and run", "security": secured,
                "parameters": [
                    { "name": "project", "in": "query", "schema": { "type": "string" }, "description": "Only this project's runs (its folder on the server)" },
                    { "name": "since", "in": "query", "schema": { "type": "string" }, "description": "Only runs created since: a date (2026-11-01), an RFC 3339 time, or an age (7d, 12h)" }
                ],
                "responses": { "200": ok("Usage", obj()), "400": err("Bad `since` or project"), "401": err("Token missing or wrong") }
            } },
            "/api/runs/{id}/resume": { "post": {
                "summary": "Continue a run from its first unfinished step (completed steps are kept); follow it at `events`", "security": secured,
                "parameters": [id_param()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
                    "budget_tokens": { "type": "integer", "minimum": 1, "description": "A new token budget for the run (e.g. after budget_exceeded)" },
                    "budget_cost": { "type": "number", "exclusiveMinimum": 0, "description": "A new cost budget for the run" }
                } } } } },
                "responses": {
                    "202": ok("Resumed", json!({ "type": "object", "properties": { "run_id": { "type": "string" }, "events": { "type": "string" } } })),
                    "404": err("No such run"),
                    "409": err("The run has completed, or is running in this server"),
                    "401": err("Token missing or wrong")
                }
            } },
            "/api/status": { "get": {
                "summary": "Session status: runs by state, live runs, uptime, offline mode", "security": secured,
                "responses": { "200": ok("Status", obj()), "401": err("Token missing or wrong") }
            } },
            "/api/config": {
                "get": {
                    "summary": "The configuration in use (values of `env` and `headers` tables redacted; api_key_env holds variable names only)", "security": secured,
                    "responses": { "200": ok("Configuration", json!({ "type": "object", "properties": { "source": obj(), "replaced_since_start": { "type": "boolean" }, "config": obj() } })), "401": err("Token missing or wrong") }
                },
                "put": {
                    "summary": "Replace the configuration file after validation; it applies to runs after a restart", "security": secured,
                    "requestBody": { "required": true, "content": {
                        "application/toml": { "schema": { "type": "string" } },
                        "text/plain": { "schema": { "type": "string" } },
                        "application/json": { "schema": obj() }
                    } },
                    "responses": {
                        "200": ok("Saved", json!({ "type": "object", "properties": { "saved": { "type": "string" }, "applies": { "type": "string" }, "warnings": { "type": "array", "items": { "$ref": "#/components/schemas/Problem" } } } })),
                        "400": err("Invalid: `problems` lists every problem with its location; nothing was changed"),
                        "409": err("No configuration file in use (built-in defaults)"),
                        "413": err("Body larger than 1 MiB"),
                        "401": err("Token missing or wrong")
                    }
                }
            },
            "/api/models/status": { "get": {
                "summary": "Local model endpoints: reachable, health, latency and models served", "security": secured,
                "responses": { "200": ok("Endpoints", json!({ "type": "array", "items": obj() })), "401": err("Token missing or wrong") }
            } },
            "/api/context/search": { "get": {
                "summary": "Hybrid search in the project memory", "security": secured,
                "parameters": [
                    { "name": "q", "in": "query", "required": true, "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "default": 10, "maximum": 100 } },
                    { "name": "mode", "in": "query", "schema": { "type": "string", "enum": ["hybrid", "bm25", "vector"] } },
                    { "name": "project", "in": "query", "schema": { "type": "string" }, "description": "A project folder on the server [default: the configured project]" },
                    { "name": "all", "in": "query", "schema": { "type": "boolean" }, "description": "Search every project" }
                ],
                "responses": { "200": ok("Hits, best first", obj()), "400": err("No query, bad mode or project"), "401": err("Token missing or wrong") }
            } },
            "/api/openapi.json": { "get": {
                "summary": "This document", "security": secured,
                "responses": { "200": ok("OpenAPI 3 document", obj()) }
            } }
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.insert("Change".into(), change_schema());
        if let Value::Object(plans) = super::plans::openapi_schemas() {
            schemas.extend(plans);
        }
    }
    if let (Some(all), Value::Object(plans)) =
        (doc["paths"].as_object_mut(), super::plans::openapi_paths(&secured))
    {
        all.extend(plans);
    }
    if let (Some(all), Value::Object(change)) =
        (doc["paths"].as_object_mut(), change_paths(&secured))
    {
        all.extend(change);
    }
    doc
}

/// The schema of a run's change (`GET /api/runs/{id}/diff`).
fn change_schema() -> Value {
    json!({

                    "type": "object",
                    "description": "A run's change against its base",
                    "properties": {
                        "base": { "type": "string", "description": "The base snapshot commit (the project's HEAD plus uncommitted changes when the run started)" },
                        "head": { "type": "string", "description": "The run's latest commit" },
                        "patch": { "type": "string", "description": "The binary-safe patch (`git diff --binary`), what apply applies" },
                        "files": { "type": "array", "items": { "type": "object", "properties": {
                            "path": { "type": "string" },
                            "status": { "type": "string", "enum": ["added", "modified", "deleted", "renamed"] },
                            "added": { "type": "integer" },
                            "removed": { "type": "integer" },
                            "from": { "type": "string", "description": "The old path of a rename" },
                            "binary": { "type": "boolean" }
                        } } }
                    }

    })
}

/// The routes of a run's change: diff, apply, revert, discard.
fn change_paths(secured: &Value) -> Value {
    json!({
            "/api/runs/{id}/diff": { "get": {
                "summary": "The run's change against its base", "security": secured,
                "parameters": [id_param(), { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "patch"], "default": "json" }, "description": "`patch` answers the patch as text/x-diff" }],
                "responses": {
                    "200": { "description": "The change", "content": {
                        "application/json": { "schema": { "$ref": "#/components/schemas/Change" } },
                        "text/x-diff": { "schema": { "type": "string" } }
                    } },
                    "400": err("Bad `format`, or the run has no workspace"),
                    "404": err("No such run"),
                    "409": err("The run's workspace is gone (code workspace_missing)"),
                    "401": err("Token missing or wrong")
                }
            } },
            "/api/runs/{id}/apply": { "post": {
                "summary": "Apply the run's change to its project, all or nothing; with `commit`, also commit it on the project's current branch", "security": secured,
                "parameters": [id_param()],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
                    "commit": { "type": "boolean", "description": "Also commit the change on the project's current branch" },
                    "message": { "type": "string", "description": "The commit's message [default: \"troupe: <task's first line> (run <short id>)\"]" }
                } } } } },
                "responses": {
                    "200": ok("Applied: the run record, its workspace's `applied` set", json!({ "$ref": "#/components/schemas/Run" })),
                    "400": err("Bad body, or the run has no workspace"),
                    "404": err("No such run"),
                    "409": err("Refused, nothing changed: code `conflict` (the message names the files that changed since the run started), `staged_changes`, `already_applied`, `nothing_to_apply`, `not_a_repository` (commit outside git), `workspace_missing`, or `wrong_state` (the run is still running)"),
                    "401": err("Token missing or wrong")
                }
            } },
            "/api/runs/{id}/revert": { "post": {
                "summary": "Undo the run's applied change", "security": secured,
                "parameters": [id_param()],
                "responses": {
                    "200": ok("Reverted: the run record", json!({ "$ref": "#/components/schemas/Run" })),
                    "404": err("No such run"),
                    "409": err("Refused, nothing changed: code `conflict` (the message names the files edited since the apply), `not_applied`, or `wrong_state` (the run is still running)"),
                    "401": err("Token missing or wrong")
                }
            } },
            "/api/runs/{id}/discard": { "post": {
                "summary": "Remove the run's workspace and branch (the run's record stays)", "security": secured,
                "parameters": [id_param()],
                "responses": {
                    "200": ok("Discarded: the run record, without a workspace", json!({ "$ref": "#/components/schemas/Run" })),
                    "400": err("The run has no workspace"),
                    "404": err("No such run"),
                    "409": err("The run is still running (code wrong_state)"),
                    "401": err("Token missing or wrong")
                }
            } }
    })
}
