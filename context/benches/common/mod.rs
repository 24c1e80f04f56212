//! What the context benchmarks share: where the model is, the machine's load, and the real
//! model wrapped so that known texts skip it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use troupe_context::{Embedder, OnnxEmbedder};

/// The installed assets folder (`$TROUPE_HOME/assets`, default
/// `~/.local/share/troupe/assets`); panics saying how to install the model when it is missing.
pub fn assets_dir() -> PathBuf {
    let home = std::env::var_os("TROUPE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share/troupe")
    });
    let assets = home.join("assets");
    let missing = troupe_context::EmbeddingAssets::in_assets_dir(&assets).missing();
    assert!(missing.is_empty(), "embedding model missing: run `scripts/setup.sh --assets-only`");
    assets
}

/// The load average, as `/proc/loadavg` says it.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// What [`KnownVectors`] answers without the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// A batch whose texts all have a vector given up front (a large synthetic corpus);
    /// anything else, queries included, goes to the model every time.
    Given,
    /// A single text (a query) embedded before: trying many fusions does not embed each
    /// query again. Batches always go to the model.
    Queries,
}

/// The real model, skipping it for texts whose vectors are known.
#[derive(Debug)]
pub struct KnownVectors {
    pub real: Arc<OnnxEmbedder>,
    pub vectors: Mutex<HashMap<String, Vec<f32>>>,
    pub known: Known,
}

impl KnownVectors {
    pub fn new(real: Arc<OnnxEmbedder>, vectors: HashMap<String, Vec<f32>>, known: Known) -> Self {
        KnownVectors { real, vectors: Mutex::new(vectors), known }
    }
}

impl Embedder for KnownVectors {
    fn model_id(&self) -> &str {
        self.real.model_id()
    }
    fn dims(&self) -> usize {
        self.real.dims()
    }
    fn embed(&self, texts: &[&str]) -> troupe_context::Result<Vec<Vec<f32>>> {
        {
            let vectors = self.vectors.lock().unwrap();
            let answer = match (self.known, texts) {
                (Known::Given, _) => texts.iter().all(|t| vectors.contains_key(*t)),
                (Known::Queries, [one]) => vectors.contains_key(*one),
                (Known::Queries, _) => false,
            };
            if answer {
                return Ok(texts.iter().map(|t| vectors[*t].clone()).collect());
            }
        }
        let out = self.real.embed(texts)?;
        if let (Known::Queries, [one], [v]) = (self.known, texts, out.as_slice()) {
            self.vectors.lock().unwrap().insert((*one).to_string(), v.clone());
        }
        Ok(out)
    }
    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.real.count_tokens(text)
    }
    fn token_spans(&self, text: &str) -> Option<Vec<(usize, usize)>> {
        self.real.token_spans(text)
    }
}
