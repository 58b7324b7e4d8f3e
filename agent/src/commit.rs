//! Ship and commit: compress a sealed batch off the reactor, upload it under its deterministic
//! key, then — in offset order per stream — record it in the pod's manifest (in the store) and
//! advance the checkpoint (in the state dir). One batch of a stream is in flight at a time, so
//! commits are in order; streams ship concurrently up to `upload_concurrency`.

use crate::checkpoint::{PodState, StateDir};
use crate::contract::{ObjectEntry, PodIdentity, StreamMeta};
use crate::pipeline::Metrics;
use crate::store::{Content, ErrorKind, Store, StoreError};
use crate::tail::Sealed;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

pub struct Shipper {
    store: Arc<Store>,
    state: StateDir,
    pods: std::sync::Mutex<HashMap<String, Arc<Mutex<PodState>>>>,
    level: u32,
    concurrency: usize,
    max_retries: u32,
    /// Drain runs give up (exit 3) instead of waiting for the store to come back.
    give_up: bool,
    /// Compression is CPU-bound: at most one batch per core at a time.
    /// Taken before a batch is handed to a task, so uncompressed batches in flight are at most
    /// one per core (memory stays flat however slow the store is).
    compressing: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

type StreamId = (String, String, u32);

/// Sealed batches taken off the channel but not yet started (waiting for their stream's previous
/// batch or a compression slot).
const QUEUED_BATCHES: usize = 2;

fn stream_id(m: &StreamMeta) -> StreamId {
    (m.pod_uid.clone(), m.container.clone(), m.restart)
}

impl Shipper {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        state: StateDir,
        pods: HashMap<String, PodState>,
        level: u32,
        concurrency: usize,
        max_retries: u32,
        give_up: bool,
        metrics: Arc<Metrics>,
    ) -> Shipper {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Shipper {
            store,
            state,
            pods: std::sync::Mutex::new(
                pods.into_iter()
                    .map(|(k, v)| (k, Arc::new(Mutex::new(v))))
                    .collect(),
            ),
            level,
            concurrency,
            max_retries,
            give_up,
            compressing: Arc::new(Semaphore::new(cores)),
            metrics,
        }
    }

    /// Ship everything that arrives until the channel closes and all is committed.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Sealed>) -> Result<(), StoreError> {
        let mut queues: HashMap<StreamId, VecDeque<Sealed>> = HashMap::new();
        let mut busy: HashSet<StreamId> = HashSet::new();
        let mut tasks: JoinSet<(StreamId, Result<(), StoreError>)> = JoinSet::new();
        let mut open = true;
        loop {
            self.start_ready(&mut queues, &mut busy, &mut tasks);
            let queued: usize = queues.values().map(VecDeque::len).sum();
            if !open && tasks.is_empty() && queued == 0 {
                return Ok(());
            }
            tokio::select! {
                msg = rx.recv(), if open && queued < QUEUED_BATCHES => match msg {
                    Some(s) => queues.entry(stream_id(&s.meta)).or_default().push_back(s),
                    None => open = false,
                },
                Some(done) = tasks.join_next() => {
                    let (id, result) = done.map_err(|e| StoreError::fatal(format!("upload task failed: {e}")))?;
                    result?;
                    busy.remove(&id);
                }
            }
        }
    }

    fn start_ready(
        self: &Arc<Self>,
        queues: &mut HashMap<StreamId, VecDeque<Sealed>>,
        busy: &mut HashSet<StreamId>,
        tasks: &mut JoinSet<(StreamId, Result<(), StoreError>)>,
    ) {
        for (id, q) in queues.iter_mut() {
            if tasks.len() >= self.concurrency {
                break;
            }
            if busy.contains(id) || q.is_empty() {
                continue;
            }
            let Ok(permit) = self.compressing.clone().try_acquire_owned() else {
                break;
            };
            if let Some(s) = q.pop_front() {
                busy.insert(id.clone());
                let me = self.clone();
                let id = id.clone();
                tasks.spawn(async move { (id, me.ship(s, permit).await) });
            }
        }
        queues.retain(|_, q| !q.is_empty());
    }

    async fn ship(
        self: Arc<Self>,
        mut s: Sealed,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), StoreError> {
        let entry = if s.batch.records > 0 {
            Some(self.upload(&mut s, permit).await?)
        } else {
            drop(permit);
            None
        };
        self.commit(s, entry).await
    }

    async fn upload(
        &self,
        s: &mut Sealed,
        permit: OwnedSemaphorePermit,
    ) -> Result<ObjectEntry, StoreError> {
        let data = std::mem::take(&mut s.batch.data);
        let level = self.level;
        let (gz, sha) = tokio::task::spawn_blocking(move || {
            let gz = crate::compress::gzip(&data, level);
            let sha = hex::encode(Sha256::digest(&gz));
            (Bytes::from(gz), sha)
        })
        .await
        .map_err(|e| StoreError::fatal(format!("compression failed: {e}")))?;
        drop(permit);
        let key = s.meta.log_key(s.batch.first_offset);
        let bytes = gz.len() as u64;
        self.put_with_retry(&key, gz, Content::GzipNdjson).await?;
        self.metrics.objects_shipped.fetch_add(1, Relaxed);
        self.metrics
            .records_shipped
            .fetch_add(s.batch.records, Relaxed);
        self.metrics.bytes_shipped.fetch_add(bytes, Relaxed);
        Ok(ObjectEntry {
            key,
            first_offset: s.batch.first_offset,
            end_offset: s.batch.end_offset,
            records: s.batch.records,
            bytes,
            sha256: sha,
            first_ts: s.batch.first_ts.clone(),
            last_ts: s.batch.last_ts.clone(),
        })
    }

    /// Manifest first, checkpoint second: a crash in between re-ships one batch to the same key.
    async fn commit(&self, s: Sealed, entry: Option<ObjectEntry>) -> Result<(), StoreError> {
        let pod = self.pod_state(&s.meta);
        let mut state = pod.lock().await;
        let c = state
            .manifest
            .container_mut(&s.meta.container, s.meta.restart);
        if let Some(entry) = entry {
            c.add_object(entry);
        }
        c.complete |= s.complete;
        c.end_offset = c.end_offset.max(s.checkpoint.offset);
        state.manifest.updated = now_rfc3339();
        state.set_stream(s.checkpoint);
        let manifest =
            Bytes::from(serde_json::to_vec(&state.manifest).expect("manifest serializes"));
        self.put_with_retry(&state.manifest.pod.manifest_key(), manifest, Content::Json)
            .await?;
        let snapshot = state.clone();
        drop(state);
        self.save_state(snapshot).await;
        Ok(())
    }

    async fn save_state(&self, snapshot: PodState) {
        let dir = self.state_dir_clone();
        let result = tokio::task::spawn_blocking(move || dir.save(&snapshot)).await;
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            // The batch is in the store and in its manifest; a lost checkpoint only means it is
            // shipped again, to the same key.
            self.metrics.state_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "cannot write checkpoint; shipping continues");
        }
    }

    fn state_dir_clone(&self) -> StateDir {
        self.state.clone()
    }

    fn pod_state(&self, meta: &StreamMeta) -> Arc<Mutex<PodState>> {
        let mut pods = self.pods.lock().expect("pods lock");
        pods.entry(meta.pod_uid.clone())
            .or_insert_with(|| Arc::new(Mutex::new(PodState::new(identity_of(meta)))))
            .clone()
    }

    /// Retries transient errors with exponential backoff and jitter; reports each change of
    /// state once, not every attempt.
    async fn put_with_retry(
        &self,
        key: &str,
        body: Bytes,
        content: Content,
    ) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(250);
        let mut failures = 0u32;
        loop {
            match self.store.put(key, body.clone(), content).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            key,
                            attempts = failures + 1,
                            "store reachable again; upload succeeded"
                        );
                    }
                    return Ok(());
                }
                Err(e) => {
                    failures += 1;
                    self.metrics.upload_errors.fetch_add(1, Relaxed);
                    if self.give_up && (e.kind == ErrorKind::Fatal || failures > self.max_retries) {
                        return Err(e);
                    }
                    if failures == 1 {
                        tracing::error!(error = %e, "upload failed; retrying with backoff (reading pauses when the queue is full)");
                    }
                    let max = if e.kind == ErrorKind::Fatal {
                        Duration::from_secs(60)
                    } else {
                        Duration::from_secs(30)
                    };
                    tokio::time::sleep(delay + jitter(delay)).await;
                    delay = (delay * 2).min(max);
                }
            }
        }
    }
}

fn identity_of(m: &StreamMeta) -> PodIdentity {
    PodIdentity {
        cluster: m.cluster.clone(),
        node: m.node.clone(),
        namespace: m.namespace.clone(),
        pod: m.pod.clone(),
        pod_uid: m.pod_uid.clone(),
        job: m.job.clone(),
        job_uid: m.job_uid.clone(),
        cronjob: m.cronjob.clone(),
        attempt: m.attempt,
        completion_index: m.completion_index,
    }
}

fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64((nanos % 1000) as f64 / 2000.0)
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
