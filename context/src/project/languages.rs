//! Which language a file is in: tables of file names and extensions.

use std::path::Path;

/// A file's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lang {
    pub(crate) name: &'static str,
    /// Counts towards "share of code".
    pub(crate) code: bool,
}

const fn lang(name: &'static str, code: bool) -> Lang {
    Lang { name, code }
}

/// Files known by their whole name.
const BY_FILE_NAME: &[(&[&str], Lang)] = &[
    (&["Dockerfile", "Containerfile"], lang("Dockerfile", false)),
    (&["Makefile", "GNUmakefile"], lang("Makefile", false)),
    (&["CMakeLists.txt"], lang("CMake", false)),
    (&["Justfile", "justfile"], lang("just", false)),
    (&["Gemfile", "Rakefile"], lang("Ruby", true)),
];

/// Lock files are generated and long: no file node.
const LOCK_FILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "go.sum",
    "composer.lock",
    "Gemfile.lock",
    "uv.lock",
];

/// Files known by their extension (lowercased).
const BY_EXTENSION: &[(&[&str], Lang)] = &[
    (&["rs"], lang("Rust", true)),
    (&["py", "pyi"], lang("Python", true)),
    (&["js", "mjs", "cjs", "jsx"], lang("JavaScript", true)),
    (&["ts", "tsx", "mts", "cts"], lang("TypeScript", true)),
    (&["go"], lang("Go", true)),
    (&["java"], lang("Java", true)),
    (&["kt", "kts"], lang("Kotlin", true)),
    (&["scala"], lang("Scala", true)),
    (&["c", "h"], lang("C", true)),
    (&["cc", "cpp", "cxx", "hpp", "hh", "hxx"], lang("C++", true)),
    (&["cs"], lang("C#", true)),
    (&["rb"], lang("Ruby", true)),
    (&["php"], lang("PHP", true)),
    (&["swift"], lang("Swift", true)),
    (&["m", "mm"], lang("Objective-C", true)),
    (&["sh", "bash", "zsh"], lang("Shell", true)),
    (&["ps1"], lang("PowerShell", true)),
    (&["lua"], lang("Lua", true)),
    (&["sql"], lang("SQL", true)),
    (&["html", "htm"], lang("HTML", true)),
    (&["css", "scss", "sass", "less"], lang("CSS", true)),
    (&["vue"], lang("Vue", true)),
    (&["svelte"], lang("Svelte", true)),
    (&["dart"], lang("Dart", true)),
    (&["ex", "exs"], lang("Elixir", true)),
    (&["erl", "hrl"], lang("Erlang", true)),
    (&["hs"], lang("Haskell", true)),
    (&["ml", "mli"], lang("OCaml", true)),
    (&["clj", "cljs"], lang("Clojure", true)),
    (&["r"], lang("R", true)),
    (&["jl"], lang("Julia", true)),
    (&["pl", "pm"], lang("Perl", true)),
    (&["zig"], lang("Zig", true)),
    (&["nix"], lang("Nix", true)),
    (&["proto"], lang("Protocol Buffers", true)),
    (&["md", "markdown"], lang("Markdown", false)),
    (&["rst"], lang("reStructuredText", false)),
    (&["toml"], lang("TOML", false)),
    (&["yaml", "yml"], lang("YAML", false)),
    (&["json"], lang("JSON", false)),
];

/// The language of the file at `path`; `None` for files the scan leaves out (unknown
/// kinds, lock files).
pub(crate) fn language_of(path: &Path) -> Option<Lang> {
    let file = path.file_name()?.to_str()?;
    if LOCK_FILES.contains(&file) {
        return None;
    }
    if let Some((_, l)) = BY_FILE_NAME.iter().find(|(names, _)| names.contains(&file)) {
        return Some(*l);
    }
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    BY_EXTENSION.iter().find(|(exts, _)| exts.contains(&ext.as_str())).map(|(_, l)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension_and_name() {
        assert_eq!(language_of(Path::new("a/b.rs")).map(|l| l.name), Some("Rust"));
        assert_eq!(language_of(Path::new("Dockerfile")).map(|l| l.code), Some(false));
        assert!(language_of(Path::new("Cargo.lock")).is_none());
        assert!(language_of(Path::new("image.png")).is_none());
        assert!(language_of(Path::new("README.md")).is_some_and(|l| !l.code));
        assert_eq!(language_of(Path::new("lib/X.PY")).map(|l| l.name), Some("Python"));
        // No extension in two rows (the first would win silently).
        let mut exts: Vec<&str> =
            BY_EXTENSION.iter().flat_map(|(e, _)| e.iter().copied()).collect();
        let n = exts.len();
        exts.sort_unstable();
        exts.dedup();
        assert_eq!(exts.len(), n);
    }
}
