//! `troupe runs audit ID`: a run's audit trail, read from its files (no store needed, so it
//! works while another process holds the store).

use std::path::Path;

use anyhow::Result;
use troupe_runtime::audit::{self, AuditEntry};
use troupe_workflows::Config;

use super::exit;

/// The full id of the run whose trail starts with `prefix`, from the files in `dir`.
pub fn resolve(dir: &Path, prefix: &str) -> std::result::Result<String, String> {
    let prefix = prefix.trim();
    if prefix.is_empty() {
        return Err("give a run id (or a unique prefix of it)".into());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no audit trails yet in {} (runs write one as they go)",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name().to_str().and_then(|n| n.strip_suffix(".jsonl")).map(String::from)
        })
        .filter(|id| id.starts_with(prefix))
        .collect();
    ids.sort();
    match ids.len() {
        0 => Err(format!(
            "no audit trail for a run {prefix}… in {} (`troupe runs` lists the runs)",
            dir.display()
        )),
        1 => Ok(ids.remove(0)),
        n => Err(format!("{n} runs start with {prefix}: {}; give more of the id", ids.join(", "))),
    }
}

/// Print entries as text, the way the `.log` file holds them.
pub fn print_trail(entries: &[AuditEntry]) {
    for e in entries {
        print!("{}", audit::render(e));
    }
}

/// `troupe runs audit ID [--json]`.
pub fn audit_command(config: &Config, id: &str, json: bool) -> Result<u8> {
    let dir = audit::audit_dir(&config.data_dir());
    let id = match resolve(&dir, id) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::FAILED);
        }
    };
    let entries = match audit::read(&dir, &id) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("troupe: {e}");
            return Ok(exit::FAILED);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_trail(&entries);
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["0190aaaa-1", "0190aaab-2", "0190bbbb-3"] {
            std::fs::write(dir.path().join(format!("{id}.jsonl")), "").unwrap();
            std::fs::write(dir.path().join(format!("{id}.log")), "").unwrap();
        }
        assert_eq!(resolve(dir.path(), "0190b").unwrap(), "0190bbbb-3");
        assert_eq!(resolve(dir.path(), "0190aaab-2").unwrap(), "0190aaab-2");
        let e = resolve(dir.path(), "0190aa").unwrap_err();
        assert!(e.contains("2 runs start with"), "{e}");
        let e = resolve(dir.path(), "ffff").unwrap_err();
        assert!(e.contains("no audit trail"), "{e}");
        let e = resolve(&dir.path().join("absent"), "0190").unwrap_err();
        assert!(e.contains("no audit trails yet"), "{e}");
    }
}
