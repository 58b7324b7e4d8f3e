//! The wiring of the agent: the one place that shows how the stages connect.
//!
//! ```text
//! Follower thread (discover → tail → parse → encode → batch)
//!     │ bounded channel of sealed batches (back-pressure: reading waits)
//!     ▼
//! Shipper task (compress on the blocking pool → store PUT → state → checkpoint; manifest parts
//!     and head at a pod's first batch, a stream's end, and every manifest_interval_secs)
//!
//! Footprint recorder task, beside them: every pod the follower pinned (shared `Identities`)
//!     → cgroup samples + pod objects or log times → footprint documents in the store
//!     (in a drain: one pass once everything is shipped, so log times are complete)
//!     │ store down: the batch goes to the spool (state_dir/spool), its checkpoint advances
//!     ▼
//! Spool uploader task (oldest first, when the store answers → manifest)
//! ```

use crate::checkpoint::StateDir;
use crate::commit::spool::Spool;
use crate::commit::{Shipper, ShipperConfig, Work};
use crate::config::Config;
use crate::contract::PodIdentity;
use crate::error::{CliError, CliResult};
use crate::footprint::recorder::{Recorder, RecorderDeps};
use crate::meta::{Identities, MetadataSource, PodObjects};
use crate::metrics::Metrics;
use crate::postmortem::ClusterRecords;
use crate::stop::Stop;
use crate::store::{ErrorKind, Store, StoreError};
use crate::watch::{Follower, FollowerDeps};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Sealed batches waiting for the shipper. Small: each holds up to `batch.max_bytes`.
const QUEUE_BATCHES: usize = 1;

/// What the agent learns from the cluster besides the log path (all `None` with `--kube off`):
/// the Kubernetes source fills all three, the demo its simulated cluster.
#[derive(Clone, Default)]
pub struct Sources {
    /// Job metadata of each pod (the follower, the recorder, /readyz).
    pub metadata: Option<Arc<dyn MetadataSource>>,
    /// Pod objects, for footprints (requests, limits, status timeline).
    pub pods: Option<Arc<dyn PodObjects>>,
    /// Events and Jobs for the post-mortem records.
    pub records: Option<Arc<dyn ClusterRecords>>,
}

pub struct RunSummary {
    pub metrics: Arc<Metrics>,
}

/// Run the agent until `stop` is set (or, with `drain`, until everything present is shipped).
pub async fn run(
    cfg: Config,
    node: String,
    drain: bool,
    stop: Arc<Stop>,
    sources: Sources,
) -> CliResult<RunSummary> {
    let store = Arc::new(Store::open_for_agent(&cfg.store).await?);
    match store.check().await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::Fatal || drain => return Err(CliError::store(e.message)),
        Err(e) => tracing::warn!(error = %e, "store not reachable yet; batches wait and retry"),
    }
    let state = StateDir::open(&cfg.state_dir).map_err(CliError::usage)?;
    let states = state.load_all();
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&cfg.state_dir, cfg.store.spool_max_bytes, metrics.clone())
        .map_err(CliError::usage)?;
    tracing::info!(store = %store.describe(), log_dir = %cfg.log_dir.display(), node = %node, pods_with_state = states.len(), drain, "agent starting");

    let (grace_over, expired) = tokio::sync::watch::channel(false);
    let shipper = Arc::new(Shipper::new(
        store.clone(),
        state.clone(),
        Arc::new(spool),
        states.clone(),
        ShipperConfig {
            level: cfg.batch.compression_level,
            batch_bytes: cfg.batch.max_bytes,
            concurrency: cfg.store.upload_concurrency,
            max_retries: cfg.store.max_retries,
            give_up: drain,
            manifest_interval: Duration::from_secs(cfg.batch.manifest_interval_secs),
        },
        metrics.clone(),
        expired,
    ));
    let uploader = if drain {
        // What an earlier run spooled lands before anything newer of the same streams.
        shipper.finish();
        shipper
            .clone()
            .upload_spool()
            .await
            .map_err(|e| CliError::store(e.message))?;
        None
    } else {
        Some(tokio::spawn(shipper.clone().upload_spool()))
    };
    start_grace_clock(
        stop.clone(),
        Duration::from_secs(cfg.shutdown_timeout_secs),
        grace_over,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE_BATCHES);
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
    let recorder = Recorder::new(
        &cfg,
        &node,
        drain,
        RecorderDeps {
            store,
            state,
            identities: identities.clone(),
            metrics: metrics.clone(),
            metadata: sources.metadata.clone(),
            pods: sources.pods.clone(),
            records: sources.records.clone(),
        },
    );
    let recover = {
        let shipper = shipper.clone();
        let rt = tokio::runtime::Handle::current();
        Box::new(move |id: &PodIdentity| rt.block_on(shipper.recover(id)))
    };
    let follower = Follower::new(
        cfg,
        node,
        FollowerDeps {
            states,
            tx,
            stop,
            metrics: metrics.clone(),
            source: sources.metadata.clone(),
            identities: identities.clone(),
            recover,
        },
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

    let done = if drain {
        let (shipped, stop_progress) = tokio::sync::oneshot::channel();
        let progress = crate::progress::follow_drain(metrics.clone(), stop_progress);
        let done = match ship(shipper, rx, reader, uploader).await {
            Ok(()) => recorder.drain().await.map(drop),
            Err(e) => Err(e),
        };
        let _ = shipped.send(());
        if let Some(progress) = progress {
            let _ = progress.await;
        }
        done
    } else {
        let (stop_recording, stopped) = tokio::sync::oneshot::channel();
        let recording = tokio::spawn(recorder.run(stopped));
        let shipped = ship(shipper, rx, reader, uploader).await;
        // The last footprints after the last batches, so their log times are complete.
        let _ = stop_recording.send(());
        let _ = recording.await;
        shipped
    };
    done.map_err(|e| CliError::store(e.message))?;
    Ok(RunSummary { metrics })
}

/// Ships until the follower is done, waits for its thread, then lets the spool uploader finish.
async fn ship(
    shipper: Arc<Shipper>,
    rx: tokio::sync::mpsc::Receiver<Work>,
    reader: std::thread::JoinHandle<()>,
    uploader: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    let shipped = shipper.clone().run(rx).await;
    // On a store failure the shipper returns early and drops the channel; the reader then stops.
    let read = tokio::task::spawn_blocking(move || reader.join()).await;
    if !matches!(read, Ok(Ok(()))) {
        // A bug, not bad input: say so rather than report a drain that read half the logs.
        return Err(StoreError::fatal(
            "the reading thread failed (see the panic above); what it had not read is read again at the next start",
        ));
    }
    shipper.finish();
    match uploader {
        // It writes every manifest still behind before it returns.
        Some(uploader) => {
            let _ = uploader.await;
        }
        None if shipped.is_ok() => shipper.write_owed_manifests(true).await?,
        None => {}
    }
    shipped
}

/// After the stop signal, the shipper has `timeout` to land what is left; then whatever is
/// still unshipped goes to the spool and the agent exits.
fn start_grace_clock(stop: Arc<Stop>, timeout: Duration, over: watch::Sender<bool>) {
    tokio::spawn(async move {
        stop.wait().await;
        tokio::time::sleep(timeout).await;
        tracing::warn!(
            timeout_secs = timeout.as_secs(),
            "shutdown timeout: unshipped batches go to the spool"
        );
        let _ = over.send(true);
        // Keep the sender alive: a dropped clock would read as "never over".
        std::future::pending::<()>().await;
    });
}

impl RunSummary {
    pub fn line(&self) -> String {
        let m = &self.metrics;
        format!(
            "read {} bytes ({} lines, {} malformed); shipped {} records in {} objects ({} bytes compressed); wrote {} footprints, {} Events objects and {} Job records",
            m.bytes_read.load(Relaxed),
            m.lines_read.load(Relaxed),
            m.parse_errors.load(Relaxed),
            m.records_shipped.load(Relaxed),
            m.objects_shipped.load(Relaxed),
            m.bytes_shipped.load(Relaxed),
            m.footprints_written.load(Relaxed),
            m.events_written.load(Relaxed),
            m.job_records_written.load(Relaxed),
        )
    }
}
