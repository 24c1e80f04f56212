//! Finding, parsing and merging `troupe.toml`, and the environment overrides.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use troupe_agent_config::config::AgentConfig;

use super::validate::{self, PathSeg, SpanLookup};
use super::{
    Config, EditsConfig, Location, Problem, Problems, Settings, Severity, TelemetryConfig,
    ValidateConfig, WorkflowConfig, line_col,
};
use crate::error::{Error, Result};

/// Where the configuration file in use came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", content = "path", rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum ConfigSource {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `$TROUPE_CONFIG`.
    Env(PathBuf),
    /// `./troupe.toml`.
    CurrentDir(PathBuf),
    /// The user config folder (`~/.config/troupe/troupe.toml`).
    UserDir(PathBuf),
    /// No file: the built-in defaults only.
    Builtin,
}

impl ConfigSource {
    /// The file, if one is in use.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p)
            | ConfigSource::Env(p)
            | ConfigSource::CurrentDir(p)
            | ConfigSource::UserDir(p) => Some(p),
            ConfigSource::Builtin => None,
        }
    }

    /// A short description for listings and `doctor`.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Flag(p) => format!("{} (from --config)", p.display()),
            ConfigSource::Env(p) => format!("{} (from $TROUPE_CONFIG)", p.display()),
            ConfigSource::CurrentDir(p) => format!("{} (current directory)", p.display()),
            ConfigSource::UserDir(p) => format!("{} (user config)", p.display()),
            ConfigSource::Builtin => "built-in defaults (no troupe.toml found)".to_string(),
        }
    }
}

/// A configuration with where it came from and everything wrong with it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged configuration. When `problems` has errors, the parts that failed are left
    /// at their built-in values; do not run work with it.
    pub config: Config,
    /// The file in use.
    pub source: ConfigSource,
    /// Every problem found: parse errors, type errors, validation errors and warnings.
    pub problems: Problems,
}

impl LoadedConfig {
    /// The configuration if it has no errors, else every error at once.
    pub fn into_valid(self) -> Result<(Config, ConfigSource, Problems)> {
        if self.problems.has_errors() {
            Err(Error::Invalid { problems: self.problems })
        } else {
            Ok((self.config, self.source, self.problems))
        }
    }
}

/// Which configuration file to use, in order: `explicit` (`--config`), `env`
/// (`$TROUPE_CONFIG`), `cwd/troupe.toml`, `user`. The first two must exist when given.
pub fn resolve_config_path(
    explicit: Option<&Path>,
    env: Option<OsString>,
    cwd: &Path,
    user: Option<PathBuf>,
) -> Result<ConfigSource> {
    if let Some(p) = explicit {
        if !p.is_file() {
            return Err(Error::NotFound { path: p.to_path_buf(), how: "--config" });
        }
        return Ok(ConfigSource::Flag(p.to_path_buf()));
    }
    if let Some(p) = env.filter(|v| !v.is_empty()).map(PathBuf::from) {
        if !p.is_file() {
            return Err(Error::NotFound { path: p, how: "$TROUPE_CONFIG" });
        }
        return Ok(ConfigSource::Env(p));
    }
    let local = cwd.join("troupe.toml");
    if local.is_file() {
        return Ok(ConfigSource::CurrentDir(local));
    }
    if let Some(u) = user.filter(|u| u.is_file()) {
        return Ok(ConfigSource::UserDir(u));
    }
    Ok(ConfigSource::Builtin)
}

impl Config {
    /// Find the configuration file (see [`resolve_config_path`]), merge it over the built-in
    /// defaults, apply the environment overrides and validate the result.
    ///
    /// Fails only when the file cannot be found or read; mistakes inside it are collected in
    /// [`LoadedConfig::problems`].
    pub fn load(explicit: Option<&Path>) -> Result<LoadedConfig> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let source = resolve_config_path(
            explicit,
            std::env::var_os("TROUPE_CONFIG"),
            &cwd,
            super::user_config_path(),
        )?;
        Config::load_from(source, std::env::vars())
    }

    /// Load `source` with the given environment (for tests and for `PUT /api/config`).
    pub fn load_from(
        source: ConfigSource,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LoadedConfig> {
        let (mut config, mut problems, text) = match source.path() {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
                let (config, problems) = Config::parse_toml(&text, path);
                (config, problems, Some(text))
            }
            None => (Config::builtin(), Problems::default(), None),
        };
        problems.0.extend(env_overrides(&mut config, env).0);
        let validation = match (&text, source.path()) {
            (Some(text), Some(path)) => match DeTable::parse(text) {
                Ok(table) => {
                    let spans = FileSpans { text, path, root: table.get_ref() };
                    validate::validate(&config, &spans)
                }
                Err(_) => validate::validate(&config, &validate::NoSpans),
            },
            _ => validate::validate(&config, &validate::NoSpans),
        };
        problems.0.extend(validation.0);
        problems.sort();
        Ok(LoadedConfig { config, source, problems })
    }

    /// Parse TOML `text` (read from `path`, used in locations) and merge it over the built-in
    /// defaults. Returns the merged configuration and the parse and type problems; a section
    /// that fails to parse keeps its built-in value. Does not validate references.
    pub fn parse_toml(text: &str, path: &Path) -> (Config, Problems) {
        let mut config = Config::builtin();
        let mut problems = Problems::default();
        let at = |offset: usize| {
            let (line, column) = line_col(text, offset);
            Location::File { path: path.to_path_buf(), line, column }
        };
        let mut error = |offset: usize, message: String| {
            problems.0.push(Problem { severity: Severity::Error, location: at(offset), message });
        };

        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                error(offset, format!("invalid TOML: {}", first_line(e.message())));
                return (config, problems);
            }
        };

        for (key, value) in root.get_ref() {
            match key.get_ref().as_ref() {
                "settings" => match Settings::deserialize(value.clone().into_deserializer()) {
                    Ok(settings) => config.settings = settings,
                    Err(e) => error(
                        e.span().map(|s| s.start).unwrap_or(key.span().start),
                        format!("in [settings]: {}", first_line(e.message())),
                    ),
                },
                "telemetry" => {
                    match TelemetryConfig::deserialize(value.clone().into_deserializer()) {
                        Ok(telemetry) => config.telemetry = telemetry,
                        Err(e) => error(
                            e.span().map(|s| s.start).unwrap_or(key.span().start),
                            format!("in [telemetry]: {}", first_line(e.message())),
                        ),
                    }
                }
                "validate" => {
                    match ValidateConfig::deserialize(value.clone().into_deserializer()) {
                        Ok(validate) => config.validate = validate,
                        Err(e) => error(
                            e.span().map(|s| s.start).unwrap_or(key.span().start),
                            format!("in [validate]: {}", first_line(e.message())),
                        ),
                    }
                }
                "edits" => match EditsConfig::deserialize(value.clone().into_deserializer()) {
                    Ok(edits) => config.edits = edits,
                    Err(e) => error(
                        e.span().map(|s| s.start).unwrap_or(key.span().start),
                        format!("in [edits]: {}", first_line(e.message())),
                    ),
                },
                "agents" => {
                    let Some(table) = value.get_ref().as_table() else {
                        error(
                            value.span().start,
                            "`agents` must be a table of agents, like [agents.NAME]".into(),
                        );
                        continue;
                    };
                    for (name, agent) in table {
                        let name_str = name.get_ref().to_string();
                        match parse_entry::<AgentConfig>(agent) {
                            Ok(a) => {
                                config.agents.insert(name_str, a);
                            }
                            Err((offset, msg)) => {
                                error(
                                    offset.unwrap_or(name.span().start),
                                    format!("in [agents.{name_str}]: {msg}"),
                                );
                                // A broken agent must not silently fall back to a built-in of
                                // the same name: drop it so references to it are reported too.
                                config.agents.remove(&name_str);
                            }
                        }
                    }
                }
                "workflows" => {
                    let Some(table) = value.get_ref().as_table() else {
                        error(
                            value.span().start,
                            "`workflows` must be a table of workflows, like [workflows.NAME]"
                                .into(),
                        );
                        continue;
                    };
                    for (name, wf) in table {
                        let name_str = name.get_ref().to_string();
                        match parse_entry::<WorkflowConfig>(wf) {
                            Ok(w) => {
                                config.workflows.insert(name_str, w);
                            }
                            Err((offset, msg)) => {
                                error(
                                    offset.unwrap_or(name.span().start),
                                    format!("in [workflows.{name_str}]: {msg}"),
                                );
                                config.workflows.remove(&name_str);
                            }
                        }
                    }
                }
                other => error(
                    key.span().start,
                    format!(
                        "unknown section `{other}`; expected `settings`, `agents`, `workflows`, `telemetry`, `validate` or `edits`"
                    ),
                ),
            }
        }
        (config, problems)
    }
}

fn parse_entry<T: for<'de> Deserialize<'de>>(
    value: &Spanned<DeValue<'_>>,
) -> std::result::Result<T, (Option<usize>, String)> {
    if !value.get_ref().is_table() {
        return Err((
            Some(value.span().start),
            format!("expected a table, found {}", value.get_ref().type_str()),
        ));
    }
    T::deserialize(value.clone().into_deserializer()).map_err(|e| {
        let start = e.span().map(|s| s.start);
        let mut msg = first_line(e.message()).to_string();
        // serde names missing and unknown fields but not the field of a wrong value: add it.
        if let Some(key) =
            start.and_then(|o| key_at(value, o)).filter(|k| !msg.contains(k.as_str()))
        {
            msg = format!("`{key}`: {msg}");
        }
        (start, msg)
    })
}

/// The dotted key whose value starts at or contains `offset`, searching nested tables.
fn key_at(value: &Spanned<DeValue<'_>>, offset: usize) -> Option<String> {
    let table = value.get_ref().as_table()?;
    for (k, v) in table {
        if v.span().contains(&offset) || v.span().start == offset {
            return Some(match key_at(v, offset) {
                Some(inner) => format!("{}.{inner}", k.get_ref()),
                None => k.get_ref().to_string(),
            });
        }
    }
    None
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// Locations of configuration paths in a parsed file.
struct FileSpans<'a> {
    text: &'a str,
    path: &'a Path,
    root: &'a DeTable<'a>,
}

impl SpanLookup for FileSpans<'_> {
    fn locate(&self, path: &[PathSeg<'_>]) -> Location {
        // A path found whole points at its value; a partly found one at the deepest key.
        let mut offset: Option<usize> = None;
        let mut table: Option<&DeTable<'_>> = Some(self.root);
        let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
        for (i, seg) in path.iter().enumerate() {
            let next = match (seg, table, array) {
                (PathSeg::Key(k), Some(t), _) => {
                    t.get_key_value(*k).map(|(key, v)| (key.span().start, v))
                }
                (PathSeg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span().start, v)),
                _ => None,
            };
            let Some((start, value)) = next else { break };
            offset = Some(if i + 1 == path.len() { value.span().start } else { start });
            table = value.get_ref().as_table();
            array = value.get_ref().as_array().map(|a| &a[..]);
        }
        match offset {
            Some(o) => {
                let (line, column) = line_col(self.text, o);
                Location::File { path: self.path.to_path_buf(), line, column }
            }
            None => Location::Builtin,
        }
    }
}

/// Apply the environment overrides to `config`, returning problems with them.
///
/// | variable | overrides |
/// |---|---|
/// | `TROUPE_OFFLINE` (`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`) | `settings.offline` |
/// | `TROUPE_PROJECT` | `settings.project_path` |
/// | `TROUPE_WORKFLOW` | `settings.default_workflow` |
/// | `TROUPE_PLANNER` | `settings.planner_agent` |
/// | `TROUPE_MAX_CONCURRENT_RUNS` | `settings.max_concurrent_runs` |
/// | `TROUPE_AGENT_<NAME>_BASE_URL`, `_MODEL`, `_COMMAND`, `_ENABLED`, `_TIMEOUT_SECS`, `_TEMPERATURE`, `_MAX_TOKENS`, `_CONTEXT_TOKENS` | that agent's field (`<NAME>` upper-cased, `-` as `_`) |
/// | `TROUPE_TELEMETRY_ENDPOINT` | `telemetry.endpoint` (empty: none) |
/// | `TROUPE_TELEMETRY_SERVICE_NAME` | `telemetry.service_name` |
/// | `TROUPE_TELEMETRY_SAMPLE_RATIO` | `telemetry.sample_ratio` |
///
/// The standard `OTEL_EXPORTER_OTLP_*` variables are read when telemetry starts, not here.
///
/// `$TROUPE_HOME` (the data folder) and `$TROUPE_CONFIG` (the file) are read elsewhere.
pub fn env_overrides(
    config: &mut Config,
    env: impl IntoIterator<Item = (String, String)>,
) -> Problems {
    let mut problems = Problems::default();
    let mut bad = |var: &str, message: String| {
        problems.0.push(Problem {
            severity: Severity::Error,
            location: Location::Env { var: var.to_string() },
            message,
        });
    };
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with("TROUPE_")).collect();
    vars.sort();
    for (var, value) in vars {
        match var.as_str() {
            "TROUPE_OFFLINE" => match parse_bool(&value) {
                Some(b) => config.settings.offline = b,
                None => bad(&var, format!("expected true or false, found `{value}`")),
            },
            "TROUPE_PROJECT" => config.settings.project_path = Some(PathBuf::from(value)),
            "TROUPE_WORKFLOW" => config.settings.default_workflow = value,
            "TROUPE_PLANNER" => config.settings.planner_agent = Some(value),
            "TROUPE_MAX_CONCURRENT_RUNS" => match value.parse::<usize>() {
                Ok(n) => config.settings.max_concurrent_runs = n,
                Err(_) => bad(&var, format!("expected a whole number, found `{value}`")),
            },
            "TROUPE_TELEMETRY_ENDPOINT" => {
                config.telemetry.endpoint =
                    Some(value.trim().to_string()).filter(|v| !v.is_empty());
            }
            "TROUPE_TELEMETRY_SERVICE_NAME" => config.telemetry.service_name = Some(value),
            "TROUPE_TELEMETRY_SAMPLE_RATIO" => match value.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => config.telemetry.sample_ratio = Some(r),
                _ => bad(&var, format!("expected a number from 0 to 1, found `{value}`")),
            },
            v if v.starts_with("TROUPE_AGENT_") => {
                let rest = &v["TROUPE_AGENT_".len()..];
                let fields = [
                    "BASE_URL",
                    "MODEL",
                    "COMMAND",
                    "ENABLED",
                    "TIMEOUT_SECS",
                    "TEMPERATURE",
                    "MAX_TOKENS",
                    "CONTEXT_TOKENS",
                ];
                let Some((name_part, field)) = fields.iter().find_map(|f| {
                    rest.strip_suffix(f).and_then(|n| n.strip_suffix('_')).map(|n| (n, *f))
                }) else {
                    bad(
                        &var,
                        format!(
                            "unknown agent field; expected TROUPE_AGENT_<NAME>_ followed by one of {}",
                            fields.join(", ")
                        ),
                    );
                    continue;
                };
                let Some(name) = config
                    .agents
                    .keys()
                    .find(|n| n.to_ascii_uppercase().replace('-', "_") == name_part)
                    .cloned()
                else {
                    let known: Vec<_> = config
                        .agents
                        .keys()
                        .map(|n| n.to_ascii_uppercase().replace('-', "_"))
                        .collect();
                    bad(
                        &var,
                        format!("no agent matches `{name_part}`; known: {}", known.join(", ")),
                    );
                    continue;
                };
                let Some(agent) = config.agents.get_mut(&name) else { continue };
                match field {
                    "BASE_URL" => agent.base_url = Some(value),
                    "MODEL" => agent.model = Some(value),
                    "COMMAND" => agent.command = Some(value),
                    "ENABLED" => match parse_bool(&value) {
                        Some(b) => agent.enabled = b,
                        None => bad(&var, format!("expected true or false, found `{value}`")),
                    },
                    // Ranges are checked with the rest of the configuration.
                    "TEMPERATURE" => match value.trim().parse::<f32>() {
                        Ok(t) => agent.temperature = Some(t),
                        Err(_) => {
                            bad(&var, format!("expected a number from 0 to 2, found `{value}`"))
                        }
                    },
                    "MAX_TOKENS" => match value.trim().parse::<u32>() {
                        Ok(n) => agent.max_tokens = Some(n),
                        Err(_) => {
                            bad(&var, format!("expected a whole number of tokens, found `{value}`"))
                        }
                    },
                    "CONTEXT_TOKENS" => match value.trim().parse::<u32>() {
                        Ok(n) => agent.context_tokens = Some(n),
                        Err(_) => {
                            bad(&var, format!("expected a whole number of tokens, found `{value}`"))
                        }
                    },
                    _ => match value.parse::<u64>() {
                        Ok(n) => agent.timeout_secs = n,
                        Err(_) => bad(
                            &var,
                            format!("expected a whole number of seconds, found `{value}`"),
                        ),
                    },
                }
            }
            _ => {}
        }
    }
    problems
}

/// `1/true/yes/on` or `0/false/no/off`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
