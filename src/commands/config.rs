//! `init`, `validate`, `agents`, `workflows`: configuration commands.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;
use troupe_adapters::Availability;
use troupe_workflows::config::{ConfigSource, INIT_TEMPLATE, LoadedConfig, Severity};
use troupe_workflows::{Config, Problems};

use super::exit;
use crate::render::Table;
use crate::render::config::{self as view, AgentView};

/// `troupe init`: write the commented template; never overwrite without `force`.
pub fn init(path: &Path, force: bool) -> Result<u8> {
    if path.exists() && !force {
        bail!("{} already exists; not overwriting it (use --force to replace it)", path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    // Write to a sibling temporary file and rename, so a full disk leaves no half file.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, INIT_TEMPLATE)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    println!("Wrote {}. Check it with `troupe validate`.", path.display());
    Ok(exit::OK)
}

/// Print problems to standard error, one per line.
pub fn print_problems(problems: &Problems) {
    let mut err = std::io::stderr().lock();
    for p in &problems.0 {
        let _ = writeln!(err, "{p}");
    }
}

/// `troupe validate`.
pub fn validate(loaded: &LoadedConfig, json: bool) -> Result<u8> {
    let errors = loaded.problems.errors().count();
    let warnings = loaded.problems.warnings().count();
    if json {
        let out = json!({
            "source": loaded.source,
            "valid": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "problems": loaded.problems.0,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("Configuration: {}", loaded.source.describe());
        for p in &loaded.problems.0 {
            println!("{p}");
        }
        if errors == 0 {
            println!(
                "OK: {} agents, {} workflows{}",
                loaded.config.agents.len(),
                loaded.config.workflows.len(),
                if warnings > 0 { format!(", {warnings} warning(s)") } else { String::new() }
            );
        } else {
            println!("{errors} error(s), {warnings} warning(s)");
        }
    }
    Ok(if errors == 0 { exit::OK } else { exit::FAILED })
}

/// `troupe agents`.
pub fn agents(config: &Config, offline: bool, json: bool) -> Result<u8> {
    if json {
        let list: Vec<_> = config
            .agents
            .iter()
            .map(|(name, a)| AgentView::new(name, a, &Availability::of(a, offline)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["NAME", "KIND", "ROLE", "STATUS", "MODEL", "ENDPOINT", "FALLBACK"]);
    for (name, a) in &config.agents {
        t.row(vec![
            name.clone(),
            a.kind.to_string(),
            a.role.map(|r| r.to_string()).unwrap_or_default(),
            Availability::of(a, offline).to_string(),
            a.model.clone().unwrap_or_default(),
            a.endpoint(),
            a.fallback.join(", "),
        ]);
    }
    print!("{}", t.render());
    Ok(exit::OK)
}

/// `troupe workflows`.
pub fn workflows(config: &Config, json: bool) -> Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(&view::workflows(config))?);
        return Ok(exit::OK);
    }
    let mut t = Table::new(&["NAME", "ITER", "STEPS", "DESCRIPTION"]);
    for (name, w) in &config.workflows {
        let steps: Vec<String> = w
            .steps
            .iter()
            .map(|s| {
                let mut text = format!("{}:{}", s.agent, s.role);
                if !s.fallback.is_empty() {
                    text.push_str(&format!(" (fallback {})", s.fallback.join(", ")));
                }
                text
            })
            .collect();
        let marker = if *name == config.settings.default_workflow { " *" } else { "" };
        t.row(vec![
            format!("{name}{marker}"),
            w.max_iterations.to_string(),
            steps.join(" → "),
            w.description.clone().unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
    println!("* the default workflow; `dynamic` asks a planner agent for the steps");
    Ok(exit::OK)
}

/// Load the configuration for a command that needs a valid one: on errors, print every
/// problem and return `Err(exit::USAGE)`.
pub fn require_valid(loaded: LoadedConfig) -> std::result::Result<(Config, ConfigSource), u8> {
    if loaded.problems.has_errors() {
        eprintln!("troupe: the configuration ({}) has errors:", loaded.source.describe());
        print_problems(&loaded.problems);
        eprintln!("Fix them (check with `troupe validate`) and try again.");
        return Err(exit::USAGE);
    }
    for w in loaded.problems.0.iter().filter(|p| p.severity == Severity::Warning) {
        tracing::warn!("{w}");
    }
    Ok((loaded.config, loaded.source))
}
