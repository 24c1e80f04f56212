//! What run records are written into: the [`Backend`] trait (a durable key → JSON document
//! map) and its unit of writing, [`Write`]. A leaf: the store reads through it and the
//! record writer's thread writes through it; it imports neither.

use serde_json::Value;

use crate::error::Result;

/// One write: store a value, or remove the key (`None`).
pub type Write = (String, Option<Value>);

/// A write with its value already encoded (JSON bytes).
pub type Encoded = (String, Option<Vec<u8>>);

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
    /// Apply `writes` so reads see them, not necessarily durably (a journaled backend
    /// has already made them durable); durable after [`Backend::flush`]. The default is
    /// [`Backend::write`].
    fn apply(&self, writes: &[Write]) -> Result<()> {
        self.write(writes)
    }
    /// [`Backend::apply`] with the values already encoded as JSON (how the journal hands
    /// them over: encoded once). The default decodes them.
    fn apply_encoded(&self, writes: &[Encoded]) -> Result<()> {
        let writes = writes
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_deref().map(serde_json::from_slice).transpose()?)))
            .collect::<Result<Vec<Write>>>()?;
        self.apply(&writes)
    }
    /// Make everything applied so far durable. The default does nothing (every write is).
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Finish what [`Backend::write`] left for after its acknowledgement (a journaled
    /// backend applies its journaled writes to the database); the record writer calls it
    /// right after acknowledging a batch. Reads see every acknowledged write either way.
    /// The default does nothing.
    fn settle(&self) -> Result<()> {
        Ok(())
    }
    /// A moment to tidy up, taken by the record writer when it has been idle for a while
    /// (a journaled backend checkpoints). The default does nothing.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
    /// The value at `key`.
    fn get(&self, key: &str) -> Result<Option<Value>>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>>;
    /// Remove `key`.
    fn remove(&self, key: &str) -> Result<()>;
}
