//! Progress reporting for long operations (scans, reindexing), without a UI dependency:
//! the binary implements [`Progress`] with progress bars.

/// Receives progress of a long operation. Implementations must be cheap: `advance` is
/// called once per item.
pub trait Progress: Sync {
    /// A phase starts with `total` items (0 when unknown).
    fn start(&self, phase: &str, total: u64);
    /// `n` more items are done.
    fn advance(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
