//! The manifest: which notes of the vault troupe wrote, for which node, with the hash of
//! what it wrote. Files it does not list are the user's and never touched.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::{read_optional, write_atomic};
use crate::kinds::is_note_folder;

/// The manifest of what troupe wrote, in the vault's root.
pub const MANIFEST: &str = ".troupe-export.json";

const MANIFEST_FORMAT: u32 = 1;

/// What troupe wrote into the vault: which note belongs to which node, and its hash.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Manifest {
    format: u32,
    /// Vault-relative path (`/`-separated) → the note.
    pub(crate) notes: BTreeMap<String, ManifestNote>,
    /// Other files troupe manages (`_Index.md`) → hash of troupe's part.
    #[serde(default)]
    pub(crate) files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ManifestNote {
    /// The node's id.
    pub(crate) node: String,
    /// SHA-256 of the frontmatter and managed section troupe wrote.
    pub(crate) hash: String,
}

impl Manifest {
    /// An empty manifest of the current format.
    pub(crate) fn new() -> Manifest {
        Manifest { format: MANIFEST_FORMAT, ..Manifest::default() }
    }

    /// The vault's manifest (empty when there is none).
    pub(crate) fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let Some(text) = read_optional(&path)? else { return Ok(Manifest::default()) };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::Manifest { path: path.clone(), reason: e.to_string() })?;
        if manifest.format > MANIFEST_FORMAT {
            return Err(Error::NewerManifest { path, format: manifest.format });
        }
        // Paths come from disk: keep only those that stay inside the vault.
        let notes = manifest.notes.into_iter().filter(|(p, _)| is_vault_note_path(p)).collect();
        Ok(Manifest { format: MANIFEST_FORMAT, notes, files: manifest.files })
    }

    /// Write the manifest into the vault, unless it holds this already.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)? + "\n";
        let path = dir.join(MANIFEST);
        if read_optional(&path)?.as_deref() != Some(json.as_str()) {
            write_atomic(&path, &json)?;
        }
        Ok(())
    }
}

/// `Folder/name.md` with a known folder and nothing that leaves the vault.
fn is_vault_note_path(rel: &str) -> bool {
    let path = Path::new(rel);
    let mut components = path.components();
    let (Some(Component::Normal(dir)), Some(Component::Normal(file)), None) =
        (components.next(), components.next(), components.next())
    else {
        return false;
    };
    dir.to_str().is_some_and(is_note_folder)
        && file.to_str().is_some_and(|f| f.ends_with(".md") && !f.starts_with('.'))
        && !rel.contains('\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_must_stay_in_the_vault() {
        assert!(is_vault_note_path("Tasks/a.md"));
        assert!(!is_vault_note_path("../a.md"));
        assert!(!is_vault_note_path("Tasks/../../a.md"));
        assert!(!is_vault_note_path("/etc/a.md"));
        assert!(!is_vault_note_path("Elsewhere/a.md"));
        assert!(!is_vault_note_path("Tasks/a.txt"));
        assert!(!is_vault_note_path("Tasks/sub/a.md"));
    }
}
