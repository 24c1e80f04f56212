//! The run records' journal: what makes a record write durable with one `fdatasync` of a
//! small append instead of a flush of the whole database.
//!
//! [`Journaled`] wraps a [`Backend`] (sled): a write is appended to the journal file —
//! durably — and is visible at once; it is applied to the backend (without its flush) when
//! the writer has acknowledged it ([`Backend::settle`]), so the caller does not wait for
//! the backend's own bookkeeping. Until then reads find it among the *unapplied* writes,
//! which they consult before the backend. The backend is flushed lazily, at a
//! *checkpoint*: when the journal is full, when the writer has been idle for a while
//! ([`crate::writer`]), and when the store closes. A checkpoint flushes the backend and then
//! starts a new generation of the journal (its header names the generation; entries of
//! older ones are ignored). When the store opens, the current generation's entries are
//! applied to the backend again, in order, then checkpointed: a crash between a write's
//! acknowledgement and the backend's flush loses nothing. Re-applying an entry the backend
//! already has is harmless — each write stores a whole value or removes a key — so a crash
//! during that replay is harmless too.
//!
//! How an append is durable: on Linux the journal is written with `O_DIRECT` — whole 4 KiB
//! blocks (the last one rewritten with each entry), complete when the device has them, the
//! guarantee sled's own flush gives (`sync_file_range`): the write survives the process and
//! the operating system crashing. It does not flush a device's volatile cache, which
//! `fdatasync` does at many times the cost on a virtual disk (docs/BENCHMARKS.md). Where
//! direct writes are not available (tmpfs, other systems) each append is followed by
//! `sync_data`. The file is preallocated (zeros up to [`CAPACITY`], synced with its size
//! at creation) so an append overwrites blocks that exist and needs no metadata. Layout: a header at offset 0
//! (`MAGIC`, generation, CRC-32 of both), entries from [`ENTRIES`]: generation (u64),
//! payload length (u32), CRC-32 of the three (u32), payload (the writes as JSON), all
//! little-endian; the payload holds each write's key and value (its JSON bytes, encoded
//! once for both the journal and the backend). Replay stops at the first entry that is not whole — a torn last write,
//! never acknowledged, is ignored.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::Backend;
use crate::backend::{Encoded, Write};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"TRPJRN01";
/// Where the first entry starts (the header has a block of its own).
pub(crate) const ENTRIES: u64 = 4096;
/// The journal's preallocated size; when the next entry would not fit, a checkpoint empties
/// it first.
pub(crate) const CAPACITY: u64 = 8 << 20;
/// An entry's fixed part: generation, length, checksum.
const ENTRY_HEAD: usize = 16;

/// A [`Backend`] whose writes are made durable by the journal at `path` (see the module).
#[derive(Debug)]
pub struct Journaled {
    inner: Arc<dyn Backend>,
    journal: Mutex<Journal>,
    /// Writes in the journal not yet applied to `inner`: the newest per key, as its JSON
    /// bytes (`None`: removed), with the number of the write that made it. Reads look here
    /// first (and decode; a write only copies the bytes it encoded anyway).
    unapplied: Mutex<Unapplied>,
}

#[derive(Debug)]
struct Journal {
    file: File,
    /// Whether `file` writes straight to the device (`O_DIRECT`): a write is complete when
    /// the device has it. Otherwise each write is followed by `sync_data`.
    direct: bool,
    path: PathBuf,
    /// The generation new entries are written with.
    generation: u64,
    /// Where the next entry goes.
    end: u64,
    /// The bytes of the block `end` is in, up to `end` (a direct write is of whole blocks).
    tail: Vec<u8>,
    /// The number the next write gets.
    next: u64,
    /// Writes in the journal, not yet applied to the backend, oldest first, with their
    /// numbers.
    pending: VecDeque<(u64, Vec<Encoded>)>,
}

/// Key → (the number of the write, its encoded value or `None` for a removal).
type Unapplied = BTreeMap<String, (u64, Option<Vec<u8>>)>;

/// The unit of a direct write (offsets, lengths and the buffer's address).
const BLOCK: usize = 4096;

impl Journaled {
    /// Open (or create) the journal at `path` over `inner`: entries left by a process that
    /// stopped before its checkpoint are applied to `inner`, which is then flushed.
    pub fn open(inner: Arc<dyn Backend>, path: &Path) -> Result<Journaled> {
        Journaled::open_with(inner, path, true)
    }

    /// [`Journaled::open`], with direct writes tried only when `direct` (tests check the
    /// fallback: a write, then `sync_data`).
    fn open_with(inner: Arc<dyn Backend>, path: &Path, direct: bool) -> Result<Journaled> {
        let io = |e: std::io::Error| journal_error(path, e);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (header, entries) = read(&bytes);
        let replayed = entries.len();
        let first = first_generation(&bytes);
        for writes in entries {
            inner.apply_encoded(&writes)?;
        }
        if replayed > 0 {
            inner.flush()?;
            tracing::info!(
                entries = replayed,
                journal = %path.display(),
                "run records written before a stop were applied from the journal"
            );
        }
        if (bytes.len() as u64) < CAPACITY {
            preallocate(&mut file, bytes.len() as u64).map_err(io)?;
        }
        let generation = header.max(first).unwrap_or(0) + 1;
        let direct = if direct { Journal::direct(path, generation) } else { None };
        let mut journal = direct.unwrap_or(Journal {
            file,
            direct: false,
            path: path.to_path_buf(),
            generation,
            end: ENTRIES,
            tail: Vec::new(),
            next: 0,
            pending: VecDeque::new(),
        });
        journal.write_header().map_err(io)?;
        if created {
            // The file's name is durable too.
            if let Some(dir) = path.parent() {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        Ok(Journaled { inner, journal: Mutex::new(journal), unapplied: Mutex::default() })
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unapplied(&self) -> MutexGuard<'_, Unapplied> {
        self.unapplied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply the journal's pending writes to the backend, oldest first; each leaves the
    /// unapplied writes once the backend has it (unless a later write of its key came).
    /// A write that fails stays pending (reads still find it) and is tried again.
    fn apply_pending(&self, journal: &mut Journal) -> Result<()> {
        while let Some((number, writes)) = journal.pending.front() {
            self.inner.apply_encoded(writes)?;
            let mut unapplied = self.unapplied();
            for (key, _) in writes {
                if unapplied.get(key).is_some_and(|(n, _)| n == number) {
                    unapplied.remove(key);
                }
            }
            drop(unapplied);
            journal.pending.pop_front();
        }
        Ok(())
    }

    /// Flush the backend and start a new generation: everything written so far is in the
    /// backend, durably, and the journal is empty.
    fn checkpoint_locked(&self, journal: &mut Journal) -> Result<()> {
        self.apply_pending(journal)?;
        if journal.end == ENTRIES {
            return Ok(());
        }
        self.inner.flush()?;
        journal.generation += 1;
        journal.write_header().map_err(|e| journal_error(&journal.path, e))
    }
}

impl Backend for Journaled {
    fn put(&self, key: &str, value: &Value) -> Result<()> {
        self.write(&[(key.to_string(), Some(value.clone()))])
    }

    fn write(&self, writes: &[Write]) -> Result<()> {
        let encoded = writes
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_ref().map(serde_json::to_vec).transpose()?)))
            .collect::<Result<Vec<Encoded>>>()?;
        let payload = payload_of(&encoded);
        let mut journal = self.journal();
        let size = (ENTRY_HEAD + payload.len()) as u64;
        if journal.end + size > CAPACITY {
            self.checkpoint_locked(&mut journal)?;
        }
        journal.append(&payload).map_err(|e| journal_error(&journal.path, e))?;
        // Durable: visible at once, applied to the backend at the next settle.
        let number = journal.next;
        journal.next += 1;
        let mut unapplied = self.unapplied();
        for (key, value) in &encoded {
            unapplied.insert(key.clone(), (number, value.clone()));
        }
        drop(unapplied);
        journal.pending.push_back((number, encoded));
        Ok(())
    }

    fn apply(&self, writes: &[Write]) -> Result<()> {
        self.write(writes)
    }

    fn settle(&self) -> Result<()> {
        let mut journal = self.journal();
        self.apply_pending(&mut journal)
    }

    fn flush(&self) -> Result<()> {
        let mut journal = self.journal();
        self.checkpoint_locked(&mut journal)
    }

    fn checkpoint(&self) -> Result<()> {
        self.flush()
    }

    fn get(&self, key: &str) -> Result<Option<Value>> {
        let unapplied = self.unapplied().get(key).map(|(_, v)| v.clone());
        match unapplied {
            Some(bytes) => Ok(bytes.as_deref().map(serde_json::from_slice).transpose()?),
            None => self.inner.get(key),
        }
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        // The unapplied writes are read first: one that is applied (and leaves them) while
        // the backend is scanned is then in the scan.
        let unapplied: Vec<(String, Option<Vec<u8>>)> = self
            .unapplied()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        let found = self.inner.scan(prefix)?;
        if unapplied.is_empty() {
            return Ok(found);
        }
        let mut merged: BTreeMap<String, Value> = found.into_iter().collect();
        for (key, value) in unapplied {
            match value {
                Some(bytes) => merged.insert(key, serde_json::from_slice(&bytes)?),
                None => merged.remove(&key),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.write(&[(key.to_string(), None)])
    }
}

impl Drop for Journaled {
    /// A clean close leaves the journal empty (the next open has nothing to apply).
    fn drop(&mut self) {
        let mut journal = self.journal();
        if let Err(e) = self.checkpoint_locked(&mut journal) {
            tracing::warn!(error = %e, "the run records' journal could not be checkpointed at close; it is applied at the next open");
        }
    }
}

impl Journal {
    /// The journal at `path` (preallocated) opened for direct writes, when the file system
    /// takes them (a header written that way); `None` otherwise (e.g. tmpfs).
    #[cfg(target_os = "linux")]
    fn direct(path: &Path, generation: u64) -> Option<Journal> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        let mut journal = Journal {
            file,
            direct: true,
            path: path.to_path_buf(),
            generation,
            end: ENTRIES,
            tail: Vec::new(),
            next: 0,
            pending: VecDeque::new(),
        };
        journal.write_header().ok()?;
        Some(journal)
    }

    #[cfg(not(target_os = "linux"))]
    fn direct(_: &Path, _: u64) -> Option<Journal> {
        None
    }

    /// Write `bytes` at `at`, on the device when this returns: one direct write of whole
    /// blocks (`at` is a block's start; the last block is padded with zeros), or a write and
    /// `sync_data`.
    fn write_durably(&mut self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        if !self.direct {
            self.file.seek(SeekFrom::Start(at))?;
            self.file.write_all(bytes)?;
            return self.file.sync_data();
        }
        let len = bytes.len().div_ceil(BLOCK) * BLOCK;
        let mut buffer = vec![0u8; len + BLOCK];
        let start = buffer.as_ptr().align_offset(BLOCK);
        let aligned = &mut buffer[start..start + len];
        aligned[..bytes.len()].copy_from_slice(bytes);
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(aligned)
    }

    /// Append one entry at `end`, durably.
    fn append(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let entry = encode_entry(self.generation, payload)?;
        let block_start = self.end - self.tail.len() as u64;
        let mut bytes = std::mem::take(&mut self.tail);
        bytes.extend_from_slice(&entry);
        let written = if self.direct {
            self.write_durably(&bytes, block_start)
        } else {
            self.write_durably(&entry, self.end)
        };
        if let Err(e) = written {
            bytes.truncate(bytes.len() - entry.len());
            self.tail = bytes;
            return Err(e);
        }
        self.end += entry.len() as u64;
        if self.direct {
            let kept = bytes.len() % BLOCK;
            self.tail = bytes.split_off(bytes.len() - kept);
        }
        Ok(())
    }

    /// Write the header (the current generation) durably; entries start over after it.
    fn write_header(&mut self) -> std::io::Result<()> {
        let mut header = Vec::with_capacity(20);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&self.generation.to_le_bytes());
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        self.write_durably(&header, 0)?;
        self.end = ENTRIES;
        self.tail.clear();
        Ok(())
    }
}

/// An entry of `generation` holding `payload`.
pub(crate) fn encode_entry(generation: u64, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a journal entry over 4 GiB")
    })?;
    let mut entry = Vec::with_capacity(ENTRY_HEAD + payload.len());
    entry.extend_from_slice(&generation.to_le_bytes());
    entry.extend_from_slice(&len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&entry);
    crc.update(payload);
    entry.extend_from_slice(&crc.finalize().to_le_bytes());
    entry.extend_from_slice(payload);
    Ok(entry)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The header's generation, when the header is whole.
fn header_generation(bytes: &[u8]) -> Option<u64> {
    let generation = u64_at(bytes, 8)?;
    let crc = u32_at(bytes, 16)?;
    (bytes.get(..8)? == MAGIC && crc32fast::hash(bytes.get(..16)?) == crc).then_some(generation)
}

/// The generation of the first entry, when it is whole (no other entry has a later one: the
/// latest generation always writes from the start).
fn first_generation(bytes: &[u8]) -> Option<u64> {
    entry_at(bytes, ENTRIES as usize).map(|(generation, _, _)| generation)
}

/// The whole entry at `at`: its generation, payload and the offset after it.
fn entry_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let generation = u64_at(bytes, at)?;
    let len = u32_at(bytes, at + 8)? as usize;
    let crc = u32_at(bytes, at + 12)?;
    let payload = bytes.get(at + ENTRY_HEAD..at + ENTRY_HEAD + len)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes.get(at..at + 12)?);
    hasher.update(payload);
    (len > 0 && hasher.finalize() == crc).then_some((generation, payload, at + ENTRY_HEAD + len))
}

/// The header's generation and the writes of its entries, in order, up to the first that
/// is not whole (or of another generation).
fn read(bytes: &[u8]) -> (Option<u64>, Vec<Vec<Encoded>>) {
    let Some(generation) = header_generation(bytes) else { return (None, Vec::new()) };
    let mut entries = Vec::new();
    let mut at = ENTRIES as usize;
    while let Some((g, payload, next)) = entry_at(bytes, at) {
        let Some(writes) = writes_of(payload) else { break };
        if g != generation {
            break;
        }
        entries.push(writes);
        at = next;
    }
    (Some(generation), entries)
}

/// An entry's payload: per write, the key's length (u32) and bytes, then the value's length
/// and bytes (length `u32::MAX`: the key is removed).
pub(crate) fn payload_of(writes: &[Encoded]) -> Vec<u8> {
    let size = writes.iter().map(|(k, v)| 8 + k.len() + v.as_ref().map_or(0, Vec::len)).sum();
    let mut payload = Vec::with_capacity(size);
    for (key, value) in writes {
        payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
        payload.extend_from_slice(key.as_bytes());
        match value {
            Some(v) => {
                payload.extend_from_slice(&(v.len() as u32).to_le_bytes());
                payload.extend_from_slice(v);
            }
            None => payload.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    payload
}

/// The writes of a payload ([`payload_of`]); `None` when it is not one.
fn writes_of(payload: &[u8]) -> Option<Vec<Encoded>> {
    let mut writes = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let key_len = u32_at(payload, at)? as usize;
        let key = std::str::from_utf8(payload.get(at + 4..at + 4 + key_len)?).ok()?;
        at += 4 + key_len;
        let value = match u32_at(payload, at)? {
            u32::MAX => {
                at += 4;
                None
            }
            len => {
                let v = payload.get(at + 4..at + 4 + len as usize)?.to_vec();
                at += 4 + len as usize;
                Some(v)
            }
        };
        writes.push((key.to_string(), value));
    }
    Some(writes)
}

/// Fill the file with zeros from `from` up to [`CAPACITY`], durably.
fn preallocate(file: &mut File, from: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    file.seek(SeekFrom::Start(at))?;
    while at < CAPACITY {
        let n = (CAPACITY - at).min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        at += n as u64;
    }
    file.sync_all()
}

fn journal_error(path: &Path, e: std::io::Error) -> Error {
    Error::Write(format!("the run records' journal {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    /// A backend that loses what was applied but not flushed when the process "crashes":
    /// `applied` is what reads see, `durable` what a restart finds.
    #[derive(Debug, Default)]
    struct Volatile {
        applied: Mutex<BTreeMap<String, Value>>,
        durable: Mutex<BTreeMap<String, Value>>,
        flushes: Mutex<usize>,
        /// Applying fails while set (the database's disk is full).
        broken: std::sync::atomic::AtomicBool,
    }

    impl Volatile {
        /// What a new process finds after a crash of the one using `self`.
        fn restarted(&self) -> Arc<Volatile> {
            let durable = self.durable.lock().unwrap().clone();
            Arc::new(Volatile {
                applied: Mutex::new(durable.clone()),
                durable: Mutex::new(durable),
                flushes: Mutex::new(0),
                broken: Default::default(),
            })
        }
    }

    impl Backend for Volatile {
        fn put(&self, key: &str, value: &Value) -> Result<()> {
            self.write(&[(key.to_string(), Some(value.clone()))])
        }
        fn write(&self, writes: &[Write]) -> Result<()> {
            self.apply(writes)?;
            self.flush()
        }
        fn apply(&self, writes: &[Write]) -> Result<()> {
            if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Write("no space left on device".into()));
            }
            let mut applied = self.applied.lock().unwrap();
            for (k, v) in writes {
                match v {
                    Some(v) => applied.insert(k.clone(), v.clone()),
                    None => applied.remove(k),
                };
            }
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            *self.durable.lock().unwrap() = self.applied.lock().unwrap().clone();
            *self.flushes.lock().unwrap() += 1;
            Ok(())
        }
        fn get(&self, key: &str) -> Result<Option<Value>> {
            Ok(self.applied.lock().unwrap().get(key).cloned())
        }
        fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
            let applied = self.applied.lock().unwrap();
            Ok(applied
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
        fn remove(&self, key: &str) -> Result<()> {
            self.write(&[(key.to_string(), None)])
        }
    }

    fn put(key: &str, value: Value) -> Vec<Write> {
        vec![(key.to_string(), Some(value))]
    }

    /// A journal over a fresh volatile backend, in a temporary folder (kept while the first
    /// of the four lives).
    fn opened() -> (tempfile::TempDir, PathBuf, Arc<Volatile>, Journaled) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.journal");
        let inner = Arc::new(Volatile::default());
        let journal = Journaled::open(inner.clone(), &path).unwrap();
        (dir, path, inner, journal)
    }

    /// A process that stops without closing: no checkpoint runs.
    fn crash(journal: Journaled) {
        std::mem::forget(journal);
    }

    #[test]
    fn a_write_is_read_before_the_database_has_it_and_goes_there_at_settle() {
        let (_dir, _, inner, journal) = opened();
        journal.write(&put("runs/a", json!(1))).unwrap();
        journal.write(&put("runs/b", json!(2))).unwrap();
        journal.settle().unwrap();
        journal.write(&put("runs/a", json!(10))).unwrap();
        journal
            .write(&[("runs/b".to_string(), None), ("runs/c".to_string(), Some(json!(3)))])
            .unwrap();
        // Acknowledged, not applied: the database still has the old values…
        assert_eq!(inner.get("runs/a").unwrap(), Some(json!(1)));
        assert_eq!(inner.get("runs/b").unwrap(), Some(json!(2)));
        // …and every read sees the new ones.
        assert_eq!(journal.get("runs/a").unwrap(), Some(json!(10)));
        assert_eq!(journal.get("runs/b").unwrap(), None);
        assert_eq!(
            journal.scan("runs/").unwrap(),
            vec![("runs/a".to_string(), json!(10)), ("runs/c".to_string(), json!(3))]
        );
        assert_eq!(journal.scan("steps/").unwrap(), vec![]);
        journal.settle().unwrap();
        assert_eq!(inner.get("runs/a").unwrap(), Some(json!(10)));
        assert_eq!(inner.get("runs/b").unwrap(), None);
        assert_eq!(inner.get("runs/c").unwrap(), Some(json!(3)));
        assert!(journal.unapplied().is_empty());
        assert_eq!(journal.scan("runs/").unwrap().len(), 2);
    }

    #[test]
    fn a_settle_that_fails_keeps_the_writes_readable_and_they_are_applied_later() {
        let (_dir, _, inner, journal) = opened();
        inner.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        journal.write(&put("runs/a", json!(1))).unwrap();
        assert!(journal.settle().is_err());
        assert_eq!(journal.get("runs/a").unwrap(), Some(json!(1)));
        assert_eq!(inner.get("runs/a").unwrap(), None);
        // A checkpoint cannot empty the journal of a write the database does not have.
        assert!(journal.checkpoint().is_err());
        journal.write(&put("runs/b", json!(2))).unwrap();
        inner.broken.store(false, std::sync::atomic::Ordering::SeqCst);
        journal.settle().unwrap();
        assert_eq!(inner.get("runs/a").unwrap(), Some(json!(1)));
        assert_eq!(inner.get("runs/b").unwrap(), Some(json!(2)));
        assert!(journal.unapplied().is_empty());
    }

    #[test]
    fn writes_not_yet_applied_are_in_the_database_after_a_clean_close_or_a_crash() {
        let (_dir, path, inner, journal) = opened();
        journal.write(&put("runs/a", json!(1))).unwrap();
        drop(journal);
        assert_eq!(inner.durable.lock().unwrap().get("runs/a"), Some(&json!(1)));

        let journal = Journaled::open(inner.clone(), &path).unwrap();
        journal.write(&put("runs/b", json!(2))).unwrap();
        crash(journal);
        let after = inner.restarted();
        let journal = Journaled::open(after.clone(), &path).unwrap();
        assert_eq!(after.get("runs/b").unwrap(), Some(json!(2)));
        assert_eq!(journal.get("runs/a").unwrap(), Some(json!(1)));
    }

    #[test]
    fn an_acknowledged_write_survives_a_crash_before_the_flush() {
        survives_a_crash(true);
    }

    #[test]
    fn without_direct_writes_too() {
        survives_a_crash(false);
    }

    fn survives_a_crash(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.journal");
        let inner = Arc::new(Volatile::default());
        let journal = Journaled::open_with(inner.clone(), &path, direct).unwrap();
        assert!(!direct || journal.journal().direct, "no direct writes on this file system");
        journal.write(&put("runs/a", json!({"state": "pending"}))).unwrap();
        journal.write(&put("runs/a", json!({"state": "completed"}))).unwrap();
        journal
            .write(&[("runs/b".to_string(), Some(json!(1))), ("runs/c".into(), Some(json!(2)))])
            .unwrap();
        journal.remove("runs/c").unwrap();
        assert_eq!(journal.get("runs/a").unwrap(), Some(json!({"state": "completed"})));
        // Written to the journal, never flushed to the backend: a crash loses it there.
        let after_crash = inner.restarted();
        crash(journal);
        assert_eq!(after_crash.get("runs/a").unwrap(), None);

        let reopened = Journaled::open_with(after_crash.clone(), &path, direct).unwrap();
        assert_eq!(reopened.get("runs/a").unwrap(), Some(json!({"state": "completed"})));
        assert_eq!(reopened.get("runs/b").unwrap(), Some(json!(1)));
        assert_eq!(reopened.get("runs/c").unwrap(), None);
        // Applied and flushed at the open: durable in the backend itself now.
        assert_eq!(after_crash.durable.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_clean_close_checkpoints_and_old_entries_are_not_applied_again() {
        let (_dir, path, inner, journal) = opened();
        journal.write(&put("runs/a", json!(1))).unwrap();
        journal.write(&put("runs/b", json!(1))).unwrap();
        drop(journal);
        assert_eq!(inner.durable.lock().unwrap().len(), 2, "closing flushes the backend");
        // The entries are still in the file, of an older generation: a backend that moved
        // on since (here: without `runs/b`) is not taken back.
        let restarted = inner.restarted();
        restarted.durable.lock().unwrap().remove("runs/b");
        restarted.applied.lock().unwrap().remove("runs/b");
        let reopened = Journaled::open(restarted.clone(), &path).unwrap();
        assert_eq!(reopened.get("runs/b").unwrap(), None);
        assert_eq!(*restarted.flushes.lock().unwrap(), 0, "nothing was replayed");
        // New writes after the reopen are replayed after a crash, the old ones still not.
        reopened.write(&put("runs/c", json!(3))).unwrap();
        let again = restarted.restarted();
        crash(reopened);
        let third = Journaled::open(again.clone(), &path).unwrap();
        assert_eq!(third.get("runs/c").unwrap(), Some(json!(3)));
        assert_eq!(third.get("runs/b").unwrap(), None);
    }

    #[test]
    fn a_torn_last_entry_is_skipped() {
        let (_dir, path, inner, journal) = opened();
        journal.write(&put("runs/a", json!("whole"))).unwrap();
        let torn_at = journal.journal().end;
        journal.write(&put("runs/b", json!("torn"))).unwrap();
        let after_crash = inner.restarted();
        crash(journal);
        // The last entry's last bytes never reached the disk.
        let mut bytes = std::fs::read(&path).unwrap();
        let entry_end = torn_at as usize
            + ENTRY_HEAD
            + payload_of(&[("runs/b".to_string(), Some(b"\"torn\"".to_vec()))]).len();
        bytes[entry_end - 3..entry_end].fill(0);
        std::fs::write(&path, &bytes).unwrap();

        let reopened = Journaled::open(after_crash, &path).unwrap();
        assert_eq!(reopened.get("runs/a").unwrap(), Some(json!("whole")));
        assert_eq!(reopened.get("runs/b").unwrap(), None);
        // Writing goes on (a new generation, from the journal's start).
        reopened.write(&put("runs/d", json!(4))).unwrap();
        assert_eq!(reopened.get("runs/d").unwrap(), Some(json!(4)));
    }

    #[test]
    fn an_entry_whose_checksum_does_not_match_ends_the_replay() {
        let (_dir, path, inner, journal) = opened();
        journal.write(&put("runs/a", json!("whole"))).unwrap();
        let flipped_at = journal.journal().end;
        journal.write(&put("runs/b", json!("flipped"))).unwrap();
        journal.write(&put("runs/c", json!("after"))).unwrap();
        let after_crash = inner.restarted();
        crash(journal);
        // One byte of the second entry's value changed on the disk: still valid JSON.
        let mut bytes = std::fs::read(&path).unwrap();
        let entry = &mut bytes[flipped_at as usize..];
        let at = entry.windows(7).position(|w| w == b"flipped").unwrap();
        entry[at] = b'F';
        std::fs::write(&path, &bytes).unwrap();

        let reopened = Journaled::open(after_crash, &path).unwrap();
        assert_eq!(reopened.get("runs/a").unwrap(), Some(json!("whole")));
        assert_eq!(reopened.get("runs/b").unwrap(), None);
        assert_eq!(reopened.get("runs/c").unwrap(), None, "nothing after a bad entry is trusted");
    }

    #[test]
    fn replaying_twice_gives_the_same_records() {
        let (_dir, path, inner, journal) = opened();
        journal.write(&put("runs/a", json!(1))).unwrap();
        journal.write(&put("runs/a", json!(2))).unwrap();
        journal.write(&put("runs/b", json!(1))).unwrap();
        journal.remove("runs/b").unwrap();
        let after_crash = inner.restarted();
        crash(journal);
        let left = std::fs::read(&path).unwrap();
        // The replay is applied, then the process dies before its checkpoint is on disk
        // (the journal as the crash left it): the next open applies it all again.
        let first = Journaled::open(after_crash.clone(), &path).unwrap();
        crash(first);
        std::fs::write(&path, &left).unwrap();
        let second = Journaled::open(after_crash.restarted(), &path).unwrap();
        assert_eq!(second.get("runs/a").unwrap(), Some(json!(2)));
        assert_eq!(second.get("runs/b").unwrap(), None);
        assert_eq!(second.scan("runs/").unwrap().len(), 1);
    }

    #[test]
    fn a_full_journal_checkpoints_and_starts_over() {
        let (_dir, path, inner, journal) = opened();
        let big = "x".repeat((CAPACITY / 3) as usize);
        for i in 0..4 {
            journal.write(&put(&format!("runs/{i}"), json!(big))).unwrap();
        }
        // The third entry did not fit: the backend was flushed (with the first two), the
        // journal started over.
        assert!(inner.durable.lock().unwrap().len() >= 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), CAPACITY);
        let after_crash = inner.restarted();
        crash(journal);
        let reopened = Journaled::open(after_crash, &path).unwrap();
        assert_eq!(reopened.scan("runs/").unwrap().len(), 4);
    }
}
