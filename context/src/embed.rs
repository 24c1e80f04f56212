//! Text embeddings: the [`Embedder`] trait, the real all-MiniLM-L6-v2 model through
//! fastembed and ONNX Runtime ([`OnnxEmbedder`]), and a deterministic fake for tests
//! ([`HashEmbedder`]).
//!
//! Pick [`OnnxEmbedder`] in production (it is what [`crate::StoreOptions::with_assets`]
//! loads, lazily, on first use) and [`HashEmbedder`] in tests that need vectors but not
//! meaning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Serialize;

use crate::error::{Error, Result};

/// What the runtime and the CLI print when the model files are missing.
pub const SETUP_HINT: &str = "run `scripts/setup.sh --assets-only` to install them";

/// Turns texts into vectors; all vectors of one embedder have [`Embedder::dims`] numbers
/// and are L2-normalised, so cosine similarity is a dot product.
///
/// Implementations: [`OnnxEmbedder`] (the real model) and `HashEmbedder` (a
/// deterministic bag-of-words fake for tests, behind the `test-utils` feature).
pub trait Embedder: Send + Sync + fmt::Debug {
    /// Identifies the model; vectors stored under another id are recomputed by a reindex.
    fn model_id(&self) -> &str;

    /// Numbers per vector.
    fn dims(&self) -> usize;

    /// One vector per text, in order. Blocking (CPU-bound): call from a blocking context.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Tokens of `text` under the model's tokenizer, when it has one.
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// Where each of `text`'s tokens lies (byte offsets, special tokens left out), when the
    /// embedder has a tokenizer: passages are cut to the model's window with it.
    fn token_spans(&self, _text: &str) -> Option<Vec<(usize, usize)>> {
        None
    }
}

/// The embedding model's files under the assets folder (see `scripts/setup.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingAssets {
    /// ONNX Runtime's shared library.
    pub onnxruntime: PathBuf,
    /// The folder with `model.onnx`, `tokenizer.json`, `config.json`,
    /// `special_tokens_map.json` and `tokenizer_config.json`.
    pub model_dir: PathBuf,
}

const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

impl EmbeddingAssets {
    /// The standard layout under `assets_dir` (`$TROUPE_HOME/assets`).
    pub fn in_assets_dir(assets_dir: &Path) -> EmbeddingAssets {
        EmbeddingAssets {
            onnxruntime: assets_dir.join("onnxruntime").join(ONNXRUNTIME_LIB),
            model_dir: assets_dir.join("embedding"),
        }
    }

    /// The files that are missing (empty when all are there).
    pub fn missing(&self) -> Vec<PathBuf> {
        std::iter::once(self.onnxruntime.clone())
            .chain(MODEL_FILES.iter().map(|f| self.model_dir.join(f)))
            .filter(|p| !p.is_file())
            .collect()
    }
}

#[cfg(target_os = "macos")]
const ONNXRUNTIME_LIB: &str = "libonnxruntime.dylib";
#[cfg(target_os = "windows")]
const ONNXRUNTIME_LIB: &str = "onnxruntime.dll";
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const ONNXRUNTIME_LIB: &str = "libonnxruntime.so";

/// Whether embeddings can be used, and why not (for `troupe doctor` and `context stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingStatus {
    /// Loaded and working.
    Ready {
        /// The model id.
        model: String,
        /// Numbers per vector.
        dims: usize,
    },
    /// The store was opened without an embedder (BM25 only, by choice).
    Disabled,
    /// Not loaded yet (it loads on first use).
    NotLoaded,
    /// Cannot be used; `reason` says why and what to do.
    Unavailable {
        /// Why, with the fix.
        reason: String,
    },
}

/// Tokenizes without truncation, giving each token's byte span (a closure over the
/// model's tokenizer, whose type fastembed does not re-export).
type TokenSpansFn = Box<dyn Fn(&str) -> Option<Vec<(usize, usize)>> + Send + Sync>;

/// The real model: all-MiniLM-L6-v2 (384 dimensions, mean pooling, L2-normalised) run by
/// ONNX Runtime through fastembed, loaded from local files only.
pub struct OnnxEmbedder {
    /// fastembed needs `&mut` to run a batch; one batch at a time.
    model: Mutex<fastembed::TextEmbedding>,
    /// The model's WordPiece tokenizer without truncation nor padding.
    spans: TokenSpansFn,
    id: String,
    dims: usize,
    batch_size: usize,
}

impl fmt::Debug for OnnxEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxEmbedder")
            .field("id", &self.id)
            .field("dims", &self.dims)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// Tokens per text the model sees; longer texts are truncated (all-MiniLM-L6-v2 was
/// trained on 256-token inputs).
pub const MAX_MODEL_TOKENS: usize = 256;

/// Texts per ONNX Runtime call.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// ONNX Runtime allows one environment per process; it is created on the first successful
/// load and kept for the life of the process.
static ORT_ENV: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn ort_environment(lib: &Path) -> Result<ort::environment::Environment> {
    let mut env = ORT_ENV.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = env.as_ref() {
        return Ok(e.clone());
    }
    // `init_from` loads the library; a missing or incompatible library is an error here
    // instead of the panic ort raises when it looks for the library itself.
    let builder = ort::init_from(lib).map_err(|e| Error::EmbeddingUnavailable {
        reason: format!("cannot load ONNX Runtime from {}: {e}; {SETUP_HINT}", lib.display()),
    })?;
    let built = builder.with_name("troupe").build().map_err(|e| Error::EmbeddingUnavailable {
        reason: format!("cannot start ONNX Runtime ({}): {e}", lib.display()),
    })?;
    *env = Some(built.clone());
    Ok(built)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::EmbeddingUnavailable {
        reason: format!("cannot read {}: {e}; {SETUP_HINT}", path.display()),
    })
}

impl OnnxEmbedder {
    /// Load the model from the standard layout under `assets_dir`.
    pub fn from_assets_dir(assets_dir: &Path) -> Result<OnnxEmbedder> {
        OnnxEmbedder::load(&EmbeddingAssets::in_assets_dir(assets_dir))
    }

    /// Load the model. Fails with [`Error::EmbeddingUnavailable`] (saying which file is
    /// missing and how to install it) instead of panicking or downloading anything.
    pub fn load(assets: &EmbeddingAssets) -> Result<OnnxEmbedder> {
        let missing = assets.missing();
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
            return Err(Error::EmbeddingUnavailable {
                reason: format!("model files missing: {}; {SETUP_HINT}", list.join(", ")),
            });
        }
        let env = ort_environment(&assets.onnxruntime)?;
        let dir = &assets.model_dir;
        let onnx = read(&dir.join("model.onnx"))?;
        let tokenizer_files = fastembed::TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"))?,
            config_file: read(&dir.join("config.json"))?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"))?,
        };
        let fingerprint = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&onnx);
            hex::encode(&digest[..6])
        };
        let model = fastembed::UserDefinedEmbeddingModel::new(onnx, tokenizer_files)
            .with_pooling(fastembed::Pooling::Mean);
        // ONNX Runtime's worker threads busy-wait between operators by default. On a busy
        // machine that burns the cores the rest of a search needs (the BM25 thread, the
        // vector scan): at 100k nodes with other builds running, a hybrid query cost 27.7 ms
        // of CPU with spinning and 16.2 ms without (docs/BENCHMARKS.md).
        let options = fastembed::InitOptionsUserDefined::new()
            .with_environment(env)
            .with_max_length(MAX_MODEL_TOKENS)
            .with_session_config("session.intra_op.allow_spinning", "0")
            .with_session_config("session.inter_op.allow_spinning", "0");
        let mut model = fastembed::TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| Error::EmbeddingUnavailable {
                reason: format!("cannot load the embedding model from {}: {e}", dir.display()),
            })?;
        let mut tokenizer = model.tokenizer.clone();
        tokenizer.with_padding(None);
        // The tokenizer fastembed runs truncates at MAX_MODEL_TOKENS (special tokens
        // included, longest first, no stride): what is past that is never seen. This copy
        // neither truncates nor pads, so that texts can be counted and cut into passages
        // that fit.
        let spans: TokenSpansFn = match tokenizer.with_truncation(None) {
            Ok(_) => Box::new(move |text: &str| {
                let encoding = tokenizer.encode(text, false).ok()?;
                Some(encoding.get_offsets().to_vec())
            }),
            Err(e) => {
                tracing::warn!("cannot configure the tokenizer for counting: {e}");
                Box::new(|_: &str| None)
            }
        };
        // Probe once: the real dimension, and a failure now rather than mid-scan.
        let probe = model.embed(["troupe"], None).map_err(|e| Error::EmbeddingUnavailable {
            reason: format!("the embedding model does not run: {e}"),
        })?;
        let dims = probe.first().map(Vec::len).unwrap_or(0);
        if dims == 0 {
            return Err(Error::EmbeddingUnavailable {
                reason: "the embedding model returned no vector".into(),
            });
        }
        Ok(OnnxEmbedder {
            model: Mutex::new(model),
            spans,
            id: format!("all-MiniLM-L6-v2/{fingerprint}"),
            dims,
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// The same model embedding `batch_size` texts per ONNX Runtime call.
    pub fn with_batch_size(mut self, batch_size: usize) -> OnnxEmbedder {
        self.batch_size = batch_size.max(1);
        self
    }

    /// fastembed's own `embed`, without troupe's batching by length: the baseline the
    /// ingest benchmark compares against.
    pub fn embed_raw(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        model.embed(texts, Some(batch_size.max(1))).map_err(|e| Error::Embedding(e.to_string()))
    }
}

impl Embedder for OnnxEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Batch texts of similar length together: padding to the longest text of a batch
        // is most of the wasted work otherwise.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vectors = model
                .embed(&batch, Some(batch.len()))
                .map_err(|e| Error::Embedding(e.to_string()))?;
            if vectors.len() != chunk.len() {
                return Err(Error::Embedding(format!(
                    "the model returned {} vectors for {} texts",
                    vectors.len(),
                    chunk.len()
                )));
            }
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        (self.spans)(text).map(|s| s.len())
    }

    fn token_spans(&self, text: &str) -> Option<Vec<(usize, usize)>> {
        (self.spans)(text)
    }
}

/// A deterministic fake: hashed bag of words and character trigrams, L2-normalised. Texts
/// that share words get similar vectors; there is no meaning in it. For tests.
#[cfg(any(test, feature = "test-utils"))]
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
    id: String,
}

#[cfg(any(test, feature = "test-utils"))]
impl HashEmbedder {
    /// A fake with `dims` dimensions.
    pub fn new(dims: usize) -> HashEmbedder {
        HashEmbedder { dims: dims.max(1), id: format!("hash-{dims}") }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dims];
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let h = fnv1a(word.as_bytes());
            let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
            v[(h >> 1) as usize % self.dims] += sign;
            let chars: Vec<char> = format!(" {word} ").chars().collect();
            for tri in chars.windows(3) {
                let s: String = tri.iter().collect();
                let h = fnv1a(s.as_bytes());
                v[(h >> 1) as usize % self.dims] += 0.25 * if h & 1 == 0 { 1.0 } else { -1.0 };
            }
        }
        crate::similarity::normalise(&mut v);
        v
    }
}

#[cfg(any(test, feature = "test-utils"))]
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(any(test, feature = "test-utils"))]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

/// Where a store's embedder comes from.
#[derive(Clone, Default)]
pub(crate) enum EmbedderSource {
    /// None: BM25 only.
    #[default]
    Disabled,
    /// The real model from this assets folder, loaded on first use.
    Assets(PathBuf),
    /// This one.
    Given(Arc<dyn Embedder>),
}

impl fmt::Debug for EmbedderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbedderSource::Disabled => f.write_str("Disabled"),
            EmbedderSource::Assets(p) => f.debug_tuple("Assets").field(p).finish(),
            EmbedderSource::Given(e) => f.debug_tuple("Given").field(&e.model_id()).finish(),
        }
    }
}

/// The store's embedder, loaded lazily (loading the real model takes a fraction of a
/// second that commands like `show` or `link` should not pay).
#[derive(Debug)]
pub(crate) struct EmbedderSlot {
    source: EmbedderSource,
    loaded: OnceLock<std::result::Result<Arc<dyn Embedder>, String>>,
}

impl EmbedderSlot {
    pub(crate) fn new(source: EmbedderSource) -> EmbedderSlot {
        EmbedderSlot { source, loaded: OnceLock::new() }
    }

    /// The embedder, loading it on first call; `Err(reason)` when there is none.
    pub(crate) fn get(&self) -> std::result::Result<Arc<dyn Embedder>, String> {
        self.loaded
            .get_or_init(|| match &self.source {
                EmbedderSource::Disabled => {
                    Err("embeddings are disabled for this store".to_string())
                }
                EmbedderSource::Given(e) => Ok(Arc::clone(e)),
                EmbedderSource::Assets(dir) => match OnnxEmbedder::from_assets_dir(dir) {
                    Ok(e) => {
                        tracing::debug!(model = e.model_id(), "embedding model loaded");
                        Ok(Arc::new(e) as Arc<dyn Embedder>)
                    }
                    Err(Error::EmbeddingUnavailable { reason }) => Err(reason),
                    Err(e) => Err(e.to_string()),
                },
            })
            .clone()
    }

    /// Whether the store was opened without embeddings on purpose.
    pub(crate) fn is_disabled(&self) -> bool {
        matches!(self.source, EmbedderSource::Disabled)
    }

    pub(crate) fn status(&self, load: bool) -> EmbeddingStatus {
        if self.is_disabled() {
            return EmbeddingStatus::Disabled;
        }
        let result = if load { Some(self.get()) } else { self.loaded.get().cloned() };
        match result {
            None => EmbeddingStatus::NotLoaded,
            Some(Ok(e)) => {
                EmbeddingStatus::Ready { model: e.model_id().to_string(), dims: e.dims() }
            }
            Some(Err(reason)) => EmbeddingStatus::Unavailable { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_embedder_is_deterministic_normalised_and_lexical() {
        let e = HashEmbedder::new(64);
        let v = e
            .embed(&["rate limit the calls", "rate limit the calls", "unrelated words here"])
            .unwrap();
        assert_eq!(v[0], v[1]);
        let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let near = e.embed(&["limit the rate"]).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!(dot(&near[0], &v[0]) > dot(&near[0], &v[2]));
        assert_eq!(e.embed(&[""]).unwrap()[0], vec![0.0; 64]);
    }

    #[test]
    fn missing_assets_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let assets = EmbeddingAssets::in_assets_dir(dir.path());
        assert_eq!(assets.missing().len(), 6);
        let e = OnnxEmbedder::load(&assets).unwrap_err().to_string();
        assert!(e.contains("model.onnx"), "{e}");
        assert!(e.contains("scripts/setup.sh --assets-only"), "{e}");
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"not a shared library").unwrap();
        let e = ort_environment(&lib);
        // Another test may have created the process's environment from the real library;
        // then this returns that one. Either way: no panic, and a bad file is never loaded.
        if let Err(e) = e {
            let e = e.to_string();
            assert!(e.contains("cannot load ONNX Runtime"), "{e}");
        }
    }

    #[test]
    fn slot_reports_why_it_has_no_embedder() {
        let dir = tempfile::tempdir().unwrap();
        let slot = EmbedderSlot::new(EmbedderSource::Assets(dir.path().to_path_buf()));
        assert_eq!(slot.status(false), EmbeddingStatus::NotLoaded);
        match slot.status(true) {
            EmbeddingStatus::Unavailable { reason } => {
                assert!(reason.contains("setup.sh"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            EmbedderSlot::new(EmbedderSource::Disabled).status(true),
            EmbeddingStatus::Disabled
        );
        let given = EmbedderSlot::new(EmbedderSource::Given(Arc::new(HashEmbedder::new(8))));
        assert_eq!(given.status(true), EmbeddingStatus::Ready { model: "hash-8".into(), dims: 8 });
    }
}
