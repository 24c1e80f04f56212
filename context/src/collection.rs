//! A small durable document API for the runtime (runs, steps, the audit log), so that only
//! this crate knows sled.
//!
//! A [`Collection`] maps string keys to JSON values. Keys are ordered bytewise, so
//! UUIDv7 keys (or [`Collection::append`]'s sequence keys) iterate in time order. Every
//! write is on disk when the call returns.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Longest collection name.
const MAX_NAME: usize = 64;

/// A named set of JSON documents by key. Cheap to clone.
#[derive(Clone)]
pub struct Collection {
    /// The store's database: flushed after every write, and the source of sequence keys.
    db: sled::Db,
    tree: sled::Tree,
    name: String,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What [`Collection::compare_and_swap`] found instead of the expected value.
#[derive(Debug, Clone, PartialEq)]
pub struct CasConflict {
    /// The value actually stored (`None`: absent).
    pub current: Option<serde_json::Value>,
}

impl Collection {
    /// The collection `name` in `db` (its tree is `doc/<name>`).
    pub(crate) fn open(db: &sled::Db, name: &str) -> Result<Collection> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(Error::InvalidInput(format!(
                "collection name {name:?} must be 1–{MAX_NAME} characters of a-z, A-Z, 0-9, _ - ."
            )));
        }
        let tree = db.open_tree(format!("doc/{name}"))?;
        Ok(Collection { db: db.clone(), tree, name: name.to_string() })
    }

    /// Make every write applied so far durable (the whole database: one fsync).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_key(key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::InvalidInput("a document key cannot be empty".into()));
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!("{}/{}", self.name, String::from_utf8_lossy(key)), e)
        })
    }

    /// Store `value` under `key`, replacing what was there.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        Self::check_key(key)?;
        let bytes = serde_json::to_vec(value)?;
        self.tree.insert(key, bytes)?;
        self.flush()
    }

    /// Apply `writes` in order — `(key, Some(value))` stores, `(key, None)` removes — as one
    /// atomic batch, made durable by a single flush: for writers that group many small
    /// writes (the runtime's record writer).
    pub fn write_batch(&self, writes: &[(String, Option<serde_json::Value>)]) -> Result<()> {
        self.apply_batch(writes)?;
        self.flush()
    }

    /// [`Collection::write_batch`] without the flush: the writes are visible at once but
    /// durable only after [`Collection::flush`] (or the database's own periodic flush), for
    /// a writer that keeps them durable by other means (the runtime's journal).
    pub fn apply_batch(&self, writes: &[(String, Option<serde_json::Value>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            Self::check_key(key)?;
            match value {
                Some(v) => batch.insert(key.as_bytes(), serde_json::to_vec(v)?),
                None => batch.remove(key.as_bytes()),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// [`Collection::apply_batch`] with the values already encoded as JSON bytes (as the
    /// runtime's journal holds them): stored as they are, not flushed.
    pub fn apply_encoded(&self, writes: &[(String, Option<Vec<u8>>)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            Self::check_key(key)?;
            match value {
                Some(v) => batch.insert(key.as_bytes(), v.as_slice()),
                None => batch.remove(key.as_bytes()),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Store `value` under `key` only if the key is absent; whether it was stored.
    pub fn insert_new<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool> {
        Self::check_key(key)?;
        let bytes = serde_json::to_vec(value)?;
        let stored = self.tree.compare_and_swap(key, None as Option<&[u8]>, Some(bytes))?.is_ok();
        if stored {
            self.flush()?;
        }
        Ok(stored)
    }

    /// Append `value` under a new key greater than every key `append` gave before (a
    /// zero-padded sequence number, durable across restarts); returns the key. For
    /// append-only logs.
    pub fn append<T: Serialize + ?Sized>(&self, value: &T) -> Result<String> {
        let bytes = serde_json::to_vec(value)?;
        loop {
            let key = format!("{:020}", self.db.generate_id()?);
            if self
                .tree
                .compare_and_swap(&key, None as Option<&[u8]>, Some(bytes.as_slice()))?
                .is_ok()
            {
                self.flush()?;
                return Ok(key);
            }
        }
    }

    /// The value under `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.tree.get(key)? {
            Some(bytes) => Ok(Some(self.decode(key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// Replace the value under `key` with `new` only if it currently equals `expected`
    /// (compared as JSON values; `None` means absent, and `new = None` removes it).
    /// `Ok(Err(conflict))` tells what is there instead.
    pub fn compare_and_swap<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: Option<&T>,
    ) -> Result<std::result::Result<(), CasConflict>> {
        Self::check_key(key)?;
        let expected = expected.map(serde_json::to_value).transpose()?;
        let new = new.map(serde_json::to_vec).transpose()?;
        loop {
            let raw = self.tree.get(key)?;
            let current: Option<serde_json::Value> =
                raw.as_ref().map(|b| self.decode(key.as_bytes(), b)).transpose()?;
            if current != expected {
                return Ok(Err(CasConflict { current }));
            }
            // Swap against the exact bytes read; if they changed meanwhile, look again.
            if self.tree.compare_and_swap(key, raw, new.clone())?.is_ok() {
                self.flush()?;
                return Ok(Ok(()));
            }
        }
    }

    /// Atomically replace the value under `key` with `f(current)` (`None`: absent / remove).
    /// `f` may run more than once when another writer races; returns the new value.
    pub fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T>,
    {
        Self::check_key(key)?;
        loop {
            let raw = self.tree.get(key)?;
            let current: Option<T> =
                raw.as_ref().map(|b| self.decode(key.as_bytes(), b)).transpose()?;
            let next = f(current);
            let bytes = next.as_ref().map(serde_json::to_vec).transpose()?;
            if self.tree.compare_and_swap(key, raw, bytes)?.is_ok() {
                self.flush()?;
                return Ok(next);
            }
        }
    }

    /// Remove `key`; the value it had.
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let old = self.tree.remove(key)?;
        self.flush()?;
        old.map(|b| self.decode(key.as_bytes(), &b)).transpose()
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), self.decode(&k, &v)?))
            })
            .collect()
    }

    /// `(key, value)` pairs with keys in `[start, end)` (`end = None`: to the last key), in
    /// key order, at most `limit`.
    pub fn range<T: DeserializeOwned>(
        &self,
        start: &str,
        end: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        let iter = match end {
            Some(end) => self.tree.range(start..end),
            None => self.tree.range(start..),
        };
        iter.take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k).into_owned(), self.decode(&k, &v)?))
            })
            .collect()
    }

    /// The last `(key, value)` in key order (the newest, for time-ordered keys).
    pub fn last<T: DeserializeOwned>(&self) -> Result<Option<(String, T)>> {
        match self.tree.last()? {
            Some((k, v)) => {
                Ok(Some((String::from_utf8_lossy(&k).into_owned(), self.decode(&k, &v)?)))
            }
            None => Ok(None),
        }
    }

    /// Keys with `prefix`, in order.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.tree
            .scan_prefix(prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}
