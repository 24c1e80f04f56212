//! Load troupe's configuration the way the CLI does and print what it holds.
//!
//! ```text
//! cargo run --example config_tour                 # built-ins, or ./troupe.toml if present
//! cargo run --example config_tour -- my.toml      # a given file
//! ```

use std::path::PathBuf;

use troupe_workflows::Config;

fn main() -> anyhow::Result<()> {
    let explicit = std::env::args().nth(1).map(PathBuf::from);
    let loaded = Config::load(explicit.as_deref())?;
    println!("configuration: {}", loaded.source.describe());
    for problem in &loaded.problems.0 {
        println!("  {problem}");
    }
    let config = loaded.config;
    println!("data folder:   {}", config.data_dir().display());
    println!("offline:       {}", config.settings.offline);
    for (name, wf) in &config.workflows {
        let agents = config.agents_of(wf);
        let local = agents.iter().all(|a| config.agent(a).is_some_and(|a| a.is_local()));
        println!(
            "workflow {name:<16} {} step(s), up to {} iteration(s), agents: {}{}",
            wf.steps.len(),
            wf.max_iterations,
            agents.join(", "),
            if local { " (runs offline)" } else { "" }
        );
    }
    Ok(())
}
