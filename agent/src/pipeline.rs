//! The wiring of the agent: the one place that shows how the stages connect.
//!
//! ```text
//! Follower thread (discover → tail → parse → encode → batch)
//!     │ bounded channel of sealed batches (back-pressure: reading waits)
//!     ▼
//! Shipper task (compress on the blocking pool → store PUT → manifest → checkpoint)
//! ```

use crate::checkpoint::StateDir;
use crate::commit::Shipper;
use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::meta::{Identities, Sources};
use crate::store::{ErrorKind, Store};
use crate::tail::TailContext;
use crate::watch::Follower;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counters of the agent (exported on /metrics).
#[derive(Debug, Default)]
pub struct Metrics {
    pub bytes_read: AtomicU64,
    pub lines_read: AtomicU64,
    pub parse_errors: AtomicU64,
    pub read_errors: AtomicU64,
    pub records_shipped: AtomicU64,
    pub objects_shipped: AtomicU64,
    pub bytes_shipped: AtomicU64,
    pub upload_errors: AtomicU64,
    pub state_errors: AtomicU64,
    pub files_open: AtomicU64,
    pub pods_tracked: AtomicU64,
    pub streams_tracked: AtomicU64,
    /// When the oldest record read but not yet committed was read (0: none).
    pub oldest_unshipped_unix_ms: AtomicU64,
    /// Last turn of the reading loop (for /healthz).
    pub heartbeat_unix_ms: AtomicU64,
}

/// Sealed batches waiting for the shipper. Small: each holds up to `batch.max_bytes`.
const QUEUE_BATCHES: usize = 2;

pub struct RunSummary {
    pub metrics: Arc<Metrics>,
}

/// Run the agent until `stop` is set (or, with `drain`, until everything present is shipped).
pub async fn run(
    cfg: Config,
    node: String,
    drain: bool,
    stop: Arc<AtomicBool>,
    sources: Sources,
) -> CliResult<RunSummary> {
    let store = Arc::new(Store::open(&cfg.store.url, cfg.store.path_style).await?);
    match store.check().await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::Fatal || drain => return Err(CliError::store(e.message)),
        Err(e) => tracing::warn!(error = %e, "store not reachable yet; batches wait and retry"),
    }
    let state = StateDir::open(&cfg.state_dir).map_err(CliError::usage)?;
    let states = state.load_all();
    let metrics = Arc::new(Metrics::default());
    tracing::info!(store = %store.describe(), log_dir = %cfg.log_dir.display(), node = %node, pods_with_state = states.len(), drain, "agent starting");

    let shipper = Arc::new(Shipper::new(
        store.clone(),
        state,
        states.clone(),
        cfg.batch.compression_level,
        cfg.store.upload_concurrency,
        cfg.store.max_retries,
        drain,
        metrics.clone(),
    ));
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_BATCHES);
    let mut roots = cfg.allowed_roots.clone();
    roots.push(cfg.log_dir.clone());
    let ctx = TailContext::new(
        crate::discover::resolve_roots(&roots),
        cfg.max_line_bytes,
        cfg.batch.max_bytes,
        metrics.clone(),
    );
    if !drain && !cfg.http_listen.is_empty() {
        let metadata = sources.metadata.clone();
        let http = Arc::new(crate::http::HttpState {
            metrics: metrics.clone(),
            store: store.clone(),
            synced: Box::new(move || metadata.as_ref().is_none_or(|m| m.synced())),
        });
        let addr = crate::http::start(&cfg.http_listen, http)
            .await
            .map_err(|e| {
                CliError::usage(format!(
                    "cannot listen on {} (http_listen): {e}",
                    cfg.http_listen
                ))
            })?;
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    let identities = Identities::default();
    let follower = Follower::new(
        cfg,
        node,
        ctx,
        states,
        tx,
        stop,
        sources.metadata.clone(),
        identities.clone(),
    );
    let reader = std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || {
            if drain {
                follower.drain()
            } else {
                follower.follow()
            }
        })
        .map_err(|e| CliError::usage(format!("cannot start reader thread: {e}")))?;

    let shipped = shipper.run(rx).await;
    // On a store failure the shipper returns early and drops the channel; the reader then stops.
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    shipped.map_err(|e| CliError::store(e.message))?;
    Ok(RunSummary { metrics })
}

impl RunSummary {
    pub fn line(&self) -> String {
        let m = &self.metrics;
        format!(
            "read {} bytes ({} lines, {} malformed); shipped {} records in {} objects ({} bytes compressed)",
            m.bytes_read.load(Relaxed),
            m.lines_read.load(Relaxed),
            m.parse_errors.load(Relaxed),
            m.records_shipped.load(Relaxed),
            m.objects_shipped.load(Relaxed),
            m.bytes_shipped.load(Relaxed)
        )
    }
}
