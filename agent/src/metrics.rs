//! The agent's counters and gauges: every stage bumps its own, /metrics (`http`) and the drain's
//! progress read them. Plain atomics, so the reading thread never waits on a reader.

use std::sync::atomic::AtomicU64;

/// Counters of the agent (exported on /metrics).
#[derive(Debug, Default)]
pub struct Metrics {
    pub bytes_read: AtomicU64,
    pub lines_read: AtomicU64,
    pub parse_errors: AtomicU64,
    /// Open batches compressed in memory to stay under the open-batch budget.
    pub batches_squeezed: AtomicU64,
    pub read_errors: AtomicU64,
    pub records_shipped: AtomicU64,
    pub objects_shipped: AtomicU64,
    pub bytes_shipped: AtomicU64,
    pub upload_errors: AtomicU64,
    pub state_errors: AtomicU64,
    pub files_open: AtomicU64,
    pub pods_tracked: AtomicU64,
    pub streams_tracked: AtomicU64,
    /// Pods whose identity the follower holds (pinned metadata).
    pub pods_pinned: AtomicU64,
    /// Pods whose state (manifest, checkpoints) the shipper holds in memory.
    pub pod_states: AtomicU64,
    /// Compressed bytes and batches waiting in the spool for the store.
    pub spool_bytes: AtomicU64,
    pub spool_batches: AtomicU64,
    /// When the oldest record read but not yet committed was read (0: none).
    pub oldest_unshipped_unix_ms: AtomicU64,
    /// Last turn of the reading loop (for /healthz).
    pub heartbeat_unix_ms: AtomicU64,
    pub footprints_written: AtomicU64,
    pub footprint_errors: AtomicU64,
    /// Post-mortem records: attempts' Events objects and Job records written, Kubernetes API
    /// requests made for them, and failures (API or store).
    pub events_written: AtomicU64,
    pub job_records_written: AtomicU64,
    pub postmortem_requests: AtomicU64,
    pub postmortem_errors: AtomicU64,
    /// `--drain`: the bytes its files hold past the checkpoints, once planned (for progress;
    /// gzip files count at their compressed size).
    pub drain_bytes_total: AtomicU64,
}
