//! What run records are written into: the [`Backend`] trait (a durable key → JSON document
//! map) and its unit of writing, [`Write`]. A leaf: the store reads through it and the
//! record writer's thread writes through it; it imports neither.

use serde_json::Value;

use crate::error::Result;

/// One write: store a value, or remove the key (`None`).
pub type Write = (String, Option<Value>);

/// Where run records live: a durable key → JSON document map. The production backend is a
/// `troupe-context` collection (sled); tests may use [`MemoryBackend`](crate::MemoryBackend).
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Store `value` at `key`, durably.
    fn put(&self, key: &str, value: &Value) -> Result<()>;
    /// Apply `writes` in order (`None` removes the key), durably; the record writer calls
    /// it with many writes at once. The default writes them one by one.
    fn write(&self, writes: &[Write]) -> Result<()> {
        for (key, value) in writes {
            match value {
                Some(v) => self.put(key, v)?,
                None => self.remove(key)?,
            }
        }
        Ok(())
    }
    /// The value at `key`.
    fn get(&self, key: &str) -> Result<Option<Value>>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>>;
    /// Remove `key`.
    fn remove(&self, key: &str) -> Result<()>;
}
