//! Ship and commit: compress a sealed batch off the reactor, upload it under its deterministic
//! key, then — in offset order per stream — record it in the pod's state (the next manifest part)
//! and advance the checkpoint (in the state dir). One batch of a stream is in flight at a time,
//! so commits are in order; streams ship concurrently up to `upload_concurrency`.
//!
//! The manifest is written in bounded pieces (docs/audit.md): the lines recorded since the last
//! write become one immutable part per stream, then the small head is rewritten. That happens at
//! a pod's first commit, when a stream completes, when `manifest_interval_secs` has passed since
//! the last write, or when a part is full — never more often than the batches, and at a cost that
//! does not grow with what the pod shipped before.
//!
//! When the store fails (after the SDK's and our retries) or is known to be down, a batch goes
//! to the spool instead and its checkpoint advances once it is durable there; so do the next
//! batches of that stream, so its commits stay in order. `upload_spool` lands spooled batches
//! oldest first when the store answers again, and only then lists them in the manifest: a
//! manifest names only objects that are in the store.

pub mod spool;
#[cfg(test)]
mod tests;

use crate::checkpoint::{PodState, StateDir};
use crate::clock::now_rfc3339;
use crate::contract::{encode_part, Gap, ObjectEntry, PodIdentity, StreamMeta};
use crate::follow::{Sealed, StreamCheckpoint};
use crate::metrics::Metrics;
use crate::retry::{Backoff, STORE_START};
use crate::store::{Content, ErrorKind, Store, StoreError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use spool::{Spool, SpoolHeader, Spooled, StreamId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Mutex, Notify, Semaphore};
use tokio::task::JoinSet;

/// What the follower hands the shipper.
#[derive(Debug)]
pub enum Work {
    /// Boxed: a sealed batch's metadata is a few hundred bytes, the channel's slots stay small.
    Batch(Box<Sealed>),
    /// The pod's folder is gone and every stream of it was sent: once its batches are
    /// committed, its state can go.
    PodGone(String),
}

/// How the shipper is set up (from the config and the run mode).
pub struct ShipperConfig {
    pub level: u32,
    /// `batch.max_bytes`: how big one uncompressed batch can be.
    pub batch_bytes: usize,
    pub concurrency: usize,
    pub max_retries: u32,
    /// Drain runs give up (exit 3) instead of spooling and waiting for the store to come back.
    pub give_up: bool,
    /// The longest lines wait for their manifest part while batches keep landing.
    pub manifest_interval: Duration,
}

/// Lines of a stream in one part at most: a part is written when a stream has this many waiting,
/// whatever the interval, so parts (and the state file holding the waiting lines) stay small.
pub const PART_MAX_LINES: usize = 256;

/// A pod's state with when its manifest was last written (in this run).
struct Pod {
    state: PodState,
    written_at: Option<Instant>,
}

pub struct Shipper {
    store: Arc<Store>,
    state: StateDir,
    spool: Arc<Spool>,
    pods: std::sync::Mutex<HashMap<String, Arc<Mutex<Pod>>>>,
    /// Pods whose manifest in the store is behind, with when it is due to be written (lines
    /// waiting for their part, or a write that failed).
    owed: std::sync::Mutex<HashMap<String, Instant>>,
    cfg: ShipperConfig,
    /// Compression is CPU-bound: at most one batch per core at a time.
    compressing: Semaphore,
    /// Uncompressed bytes the shipper holds (queued or being compressed), and what it may
    /// hold: past it, reading waits. This, not a count of batches, bounds the agent's memory.
    raw_held: AtomicUsize,
    raw_budget: usize,
    /// A batch was compressed: `raw_held` went down.
    compressed: Notify,
    metrics: Arc<Metrics>,
    /// The last store write failed: batches go straight to the spool until one succeeds.
    down: AtomicBool,
    /// No more batches will come (shutdown or the end of a drain).
    finishing: AtomicBool,
    /// The shutdown grace period is over: stop waiting for the store, spool what is left.
    expired: watch::Receiver<bool>,
}

fn stream_id(m: &StreamMeta) -> StreamId {
    (m.pod_uid.clone(), m.container.clone(), m.restart)
}

/// What a landed batch adds to its stream's record.
struct Landed<'a> {
    entry: Option<ObjectEntry>,
    gap: Option<Gap>,
    checkpoint: &'a StreamCheckpoint,
    complete: bool,
}

/// A compressed batch ready to upload, with its manifest entry.
struct Packed {
    gz: Bytes,
    entry: ObjectEntry,
}

/// Waits between store tries of a batch, and while the spool cannot be written.
const BACKOFF: Backoff = Backoff::new(STORE_START, Duration::from_secs(30));

impl Shipper {
    pub fn new(
        store: Arc<Store>,
        state: StateDir,
        spool: Arc<Spool>,
        pods: HashMap<String, PodState>,
        cfg: ShipperConfig,
        metrics: Arc<Metrics>,
        expired: watch::Receiver<bool>,
    ) -> Shipper {
        let compressors = crate::compress::compressors();
        // Lines an earlier run recorded but did not write: due now.
        let owed = pods
            .values()
            .filter(|p| p.manifest_pending || p.has_pending())
            .map(|p| (p.identity().pod_uid.clone(), Instant::now()))
            .collect();
        Shipper {
            store,
            state,
            spool,
            pods: std::sync::Mutex::new(
                pods.into_iter()
                    .map(|(k, state)| {
                        let pod = Pod {
                            state,
                            written_at: None,
                        };
                        (k, Arc::new(Mutex::new(pod)))
                    })
                    .collect(),
            ),
            owed: std::sync::Mutex::new(owed),
            // The batches being compressed and no more: the follower fills the next one
            // meanwhile, and nothing piles up behind a slow store.
            raw_budget: compressors * cfg.batch_bytes,
            cfg,
            compressing: Semaphore::new(compressors),
            raw_held: AtomicUsize::new(0),
            compressed: Notify::new(),
            metrics,
            down: AtomicBool::new(false),
            finishing: AtomicBool::new(false),
            expired,
        }
    }

    /// Ship everything that arrives until the channel closes and all is committed.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Work>) -> Result<(), StoreError> {
        let mut queues: HashMap<StreamId, VecDeque<Sealed>> = HashMap::new();
        let mut busy: HashSet<StreamId> = HashSet::new();
        let mut gone: Vec<String> = Vec::new();
        let mut tasks: JoinSet<(StreamId, Result<(), StoreError>)> = JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut open = true;
        loop {
            self.start_ready(&mut queues, &mut busy, &mut tasks);
            self.forget_settled(&mut gone, &queues, &busy);
            let queued: usize = queues.values().map(VecDeque::len).sum();
            if !open && tasks.is_empty() && queued == 0 {
                return Ok(());
            }
            // Room for a whole batch more: the budget is a ceiling, not a threshold.
            let room = queued < self.cfg.concurrency
                && self.raw_held.load(Relaxed) + self.cfg.batch_bytes <= self.raw_budget;
            tokio::select! {
                msg = rx.recv(), if open && room => match msg {
                    Some(Work::Batch(s)) => {
                        self.raw_held.fetch_add(s.batch.len(), Relaxed);
                        queues.entry(stream_id(&s.meta)).or_default().push_back(*s);
                    }
                    Some(Work::PodGone(uid)) => gone.push(uid),
                    None => open = false,
                },
                Some(done) = tasks.join_next() => {
                    let (id, result) = done.map_err(|e| StoreError::fatal(format!("upload task failed: {e}")))?;
                    result?;
                    busy.remove(&id);
                }
                _ = tick.tick(), if !gone.is_empty() => {}
                _ = self.compressed.notified(), if !room => {}
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
            if tasks.len() >= self.cfg.concurrency {
                break;
            }
            if busy.contains(id) {
                continue;
            }
            if let Some(s) = q.pop_front() {
                busy.insert(id.clone());
                let me = self.clone();
                let id = id.clone();
                tasks.spawn(async move { (id, me.ship(s).await) });
            }
        }
        queues.retain(|_, q| !q.is_empty());
    }

    /// Drop the memory and state file of pods that are gone, once nothing of theirs is pending.
    fn forget_settled(
        &self,
        gone: &mut Vec<String>,
        queues: &HashMap<StreamId, VecDeque<Sealed>>,
        busy: &HashSet<StreamId>,
    ) {
        gone.retain(|uid| {
            let pending =
                queues.keys().chain(busy.iter()).any(|k| &k.0 == uid) || self.spool.holds_pod(uid);
            // Gone: its waiting lines need not wait for the interval any more.
            let owed = match self.lock_owed().get_mut(uid) {
                Some(due) => {
                    *due = (*due).min(Instant::now());
                    true
                }
                None => false,
            };
            let pending = pending || owed;
            if !pending {
                self.lock_pods().remove(uid);
                self.state.remove(uid);
                self.metrics
                    .pod_states
                    .store(self.lock_pods().len() as u64, Relaxed);
            }
            pending
        });
    }

    async fn ship(self: Arc<Self>, mut s: Sealed) -> Result<(), StoreError> {
        let packed = if s.batch.records > 0 {
            Some(self.compress(&mut s).await?)
        } else {
            self.release_raw(std::mem::take(&mut s.batch.data).len());
            None
        };
        let via_spool = !self.cfg.give_up
            && (self.down.load(Relaxed) || self.spool.holds_stream(&stream_id(&s.meta)));
        if !via_spool {
            match self.land(packed.as_ref(), self.cfg.max_retries).await {
                Ok(()) => {
                    let pod = self.pod_state(&s.meta.identity());
                    let landed = Landed {
                        entry: packed.map(|p| p.entry),
                        gap: s.gap,
                        checkpoint: &s.checkpoint,
                        complete: s.complete,
                    };
                    return self.commit(pod, landed, true).await;
                }
                Err(e) if self.cfg.give_up => return Err(e),
                Err(e) => self.went_down(&e),
            }
        }
        self.spool_batch(s, packed).await;
        Ok(())
    }

    /// Uncompressed bytes leave the shipper: reading may go on.
    fn release_raw(&self, bytes: usize) {
        self.raw_held.fetch_sub(bytes, Relaxed);
        self.compressed.notify_one();
    }

    async fn compress(&self, s: &mut Sealed) -> Result<Packed, StoreError> {
        let raw = s.batch.len();
        let (data, suffix) = (std::mem::take(&mut s.batch.data), s.batch.suffix.take());
        let squeezed = std::mem::take(&mut s.batch.squeezed);
        let records = s.batch.unsqueezed();
        let permit = match self.compressing.acquire().await {
            Ok(permit) => permit,
            Err(e) => {
                self.release_raw(raw);
                return Err(StoreError::fatal(e.to_string()));
            }
        };
        let level = self.cfg.level;
        let done = tokio::task::spawn_blocking(move || {
            let data = crate::batch::whole(data, suffix.as_deref(), records);
            let gz = if squeezed.is_empty() {
                crate::compress::gzip(&data, level)
            } else {
                squeezed.finish(&data, level)
            };
            crate::batch::recycle(data);
            let sha = hex::encode(Sha256::digest(&gz));
            (Bytes::from(gz), sha)
        })
        .await;
        drop(permit);
        self.release_raw(raw);
        let (gz, sha) = done.map_err(|e| StoreError::fatal(format!("compression failed: {e}")))?;
        let b = &s.batch;
        let entry = ObjectEntry {
            key: s.meta.log_key(b.first_offset),
            first_offset: b.first_offset,
            end_offset: b.end_offset,
            records: b.records,
            bytes: gz.len() as u64,
            sha256: sha,
            first_ts: b.first_ts.clone(),
            last_ts: b.last_ts.clone(),
        };
        Ok(Packed { gz, entry })
    }

    /// Upload a log object (nothing to do for a batch without records).
    async fn land(&self, packed: Option<&Packed>, attempts: u32) -> Result<(), StoreError> {
        let Some(p) = packed else { return Ok(()) };
        self.land_entry(&p.entry, p.gz.clone(), attempts).await
    }

    async fn land_entry(
        &self,
        entry: &ObjectEntry,
        gz: Bytes,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.put_with_retry(&entry.key, gz, Content::GzipNdjson, attempts)
            .await?;
        self.metrics.objects_shipped.fetch_add(1, Relaxed);
        self.metrics
            .records_shipped
            .fetch_add(entry.records, Relaxed);
        self.metrics.bytes_shipped.fetch_add(entry.bytes, Relaxed);
        Ok(())
    }

    /// Record a landed batch in its pod's state, write the manifest if it is due, then save the
    /// state: the object is in the store before the state says so, so a crash in between
    /// re-ships one batch to the same key. The pod's lock is held throughout, so its state file
    /// has one writer at a time and saves land in order. A spooled batch landing later does
    /// not move the checkpoint (it moved when spooled).
    async fn commit(
        &self,
        pod: Arc<Mutex<Pod>>,
        landed: Landed<'_>,
        advance: bool,
    ) -> Result<(), StoreError> {
        let mut pod = pod.lock().await;
        let cp = landed.checkpoint;
        let stream = pod.state.stream_mut(&cp.container, cp.restart);
        stream.record(landed.entry, landed.gap, cp, landed.complete);
        if advance {
            stream.checkpoint = cp.clone();
        }
        let full = stream.pending.len() >= PART_MAX_LINES;
        let due = match pod.written_at {
            _ if landed.complete || full => Instant::now(),
            None => Instant::now(),
            Some(at) => at + self.cfg.manifest_interval,
        };
        if due <= Instant::now() {
            self.write_manifest(&mut pod).await?;
        } else {
            pod.state.manifest_pending = true;
            let uid = pod.state.identity().pod_uid.clone();
            self.lock_owed().entry(uid).or_insert(due);
        }
        self.save_state(pod.state.clone()).await;
        Ok(())
    }

    /// The lines waiting in each stream as one part, then the head. Any failure leaves
    /// everything pending, to be written again (parts and head have deterministic keys, so
    /// a part written twice is the same object). Ok when written or owed for later.
    async fn write_manifest(&self, pod: &mut Pod) -> Result<(), StoreError> {
        let id = pod.state.identity().clone();
        let mut result = Ok(());
        for s in pod.state.streams.iter().filter(|s| !s.pending.is_empty()) {
            let meta = id.stream(&s.checkpoint.container, s.checkpoint.restart);
            let key = meta.part_key(s.pending[0].span().0);
            let body = Bytes::from(encode_part(&s.pending));
            result = self
                .put_with_retry(&key, body, Content::Ndjson, self.cfg.max_retries)
                .await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            let head = pod.state.head(now_rfc3339());
            let body = Bytes::from(serde_json::to_vec(&head).expect("manifest serializes"));
            result = self
                .put_with_retry(
                    &id.manifest_key(),
                    body,
                    Content::Json,
                    self.cfg.max_retries,
                )
                .await;
        }
        match result {
            Ok(()) => {
                for s in &mut pod.state.streams {
                    s.mark_written();
                }
                pod.state.manifest_pending = false;
                pod.written_at = Some(Instant::now());
                self.lock_owed().remove(&id.pod_uid);
                Ok(())
            }
            Err(e) if self.cfg.give_up => Err(e),
            Err(e) => {
                self.went_down(&e);
                pod.state.manifest_pending = true;
                self.lock_owed().insert(id.pod_uid.clone(), Instant::now());
                Ok(())
            }
        }
    }

    /// Spool a batch, then advance its checkpoint. Waits while the spool is full or cannot be
    /// written (reading pauses behind it); once the shutdown grace period is over, gives up
    /// without advancing the checkpoint, so the next start reads the batch again.
    async fn spool_batch(&self, s: Sealed, packed: Option<Packed>) {
        let header = SpoolHeader {
            pod: s.meta.identity(),
            checkpoint: s.checkpoint,
            complete: s.complete,
            entry: packed.as_ref().map(|p| p.entry.clone()),
            gap: s.gap,
        };
        let body = packed.map(|p| p.gz).unwrap_or_default();
        let mut backoff = BACKOFF;
        let mut reported = false;
        loop {
            // Room first: past the grace period a batch is still spooled when it can be.
            let room = tokio::select! {
                biased;
                room = self.spool.reserve(body.len() as u64) => room,
                _ = self.grace_over() => return,
            };
            match self.spool.write(room, &header, body.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    self.metrics.state_errors.fetch_add(1, Relaxed);
                    if !std::mem::replace(&mut reported, true) {
                        tracing::error!(error = %e, "cannot write to the spool while the store is down; reading pauses until one of them works");
                    }
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        }
        let pod = self.pod_state(&header.pod);
        let mut pod = pod.lock().await;
        pod.state.set_stream(header.checkpoint);
        self.save_state(pod.state.clone()).await;
    }

    /// The uploader of the spool: lands spooled batches oldest first and writes stale
    /// manifests, whenever the store answers. Returns once `finish` was called and the spool is
    /// empty, or the store is down (what is left is uploaded at the next start), or the grace
    /// period is over. In a drain run, a store failure is an error.
    pub async fn upload_spool(self: Arc<Self>) -> Result<(), StoreError> {
        let mut backoff = BACKOFF;
        loop {
            let added = self.spool.added();
            let Some(item) = self.spool.oldest() else {
                let finishing = self.finishing.load(Relaxed);
                // Finishing: every manifest that is behind, now. In a drain, failing is an error.
                let written = self.write_owed_manifests(finishing).await;
                if finishing {
                    return written;
                }
                tokio::select! {
                    _ = added => {},
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                }
                continue;
            };
            match self.land_spooled(&item).await {
                Ok(()) => {
                    backoff.reset();
                    if self.down.swap(false, Relaxed) {
                        tracing::info!("store reachable again; uploading spooled batches");
                    }
                }
                Err(e) if self.cfg.give_up => return Err(e),
                Err(e) => {
                    self.went_down(&e);
                    if self.finishing.load(Relaxed) || !self.pause(&mut backoff).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// No more batches will come: `upload_spool` returns once it has nothing left to do.
    pub fn finish(&self) {
        self.finishing.store(true, Relaxed);
    }

    async fn land_spooled(&self, item: &Spooled) -> Result<(), StoreError> {
        let (header, body) = match Spool::read(item).await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(file = %item.path.display(), error = %e, "unreadable spool file set aside");
                self.spool.set_aside(item);
                return Ok(());
            }
        };
        let attempts = if self.cfg.give_up {
            self.cfg.max_retries
        } else {
            1
        };
        if let Some(entry) = &header.entry {
            self.land_entry(entry, body, attempts).await?;
        }
        let pod = self.pod_state_or_recover(&header.pod).await;
        let landed = Landed {
            entry: header.entry,
            gap: header.gap,
            checkpoint: &header.checkpoint,
            complete: header.complete,
        };
        self.commit(pod, landed, false).await?;
        self.spool.remove(item);
        Ok(())
    }

    /// Writes the manifests that are due (all that are behind, with `all`): lines that waited
    /// the interval, pods that are gone, writes that failed. Stops at the first failure (the
    /// store is down; they stay owed); returns it in a drain run.
    pub async fn write_owed_manifests(&self, all: bool) -> Result<(), StoreError> {
        let now = Instant::now();
        let due: Vec<String> = self
            .lock_owed()
            .iter()
            .filter(|(_, at)| all || **at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            let pod = self.lock_pods().get(&uid).cloned();
            let Some(pod) = pod else {
                self.lock_owed().remove(&uid);
                continue;
            };
            let mut pod = pod.lock().await;
            self.write_manifest(&mut pod).await?;
            if pod.state.manifest_pending {
                return Ok(());
            }
            self.save_state(pod.state.clone()).await;
        }
        Ok(())
    }

    /// A pod the agent has no state for, whose earlier batches may be in the store (the state
    /// file was lost or corrupt): its manifest there says what landed and where to resume.
    /// `None` when there is no manifest or the store cannot say.
    pub async fn recover(&self, id: &PodIdentity) -> Option<PodState> {
        let known = self.lock_pods().get(&id.pod_uid).cloned();
        if let Some(known) = known {
            return Some(known.lock().await.state.clone());
        }
        let key = id.manifest_key();
        let data = match self.store.get(&key).await {
            Ok(data) => data?,
            Err(e) => {
                tracing::warn!(pod = %id.pod, error = %e, "cannot read the pod's manifest to resume; reading its logs from the start (the reader drops what it already has)");
                return None;
            }
        };
        let manifest = match serde_json::from_slice(&data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(key, error = %e, "unreadable manifest; reading the pod's logs from the start");
                return None;
            }
        };
        let state = PodState::from_manifest(manifest);
        tracing::info!(pod = %id.pod, "no checkpoint for this pod; resuming from its manifest in the store");
        if state.has_pending() {
            // A head of the old format: its objects go to a first part.
            self.lock_owed().insert(id.pod_uid.clone(), Instant::now());
        }
        let pod = Pod {
            state: state.clone(),
            written_at: None,
        };
        self.lock_pods()
            .entry(id.pod_uid.clone())
            .or_insert_with(|| Arc::new(Mutex::new(pod)));
        Some(state)
    }

    async fn save_state(&self, snapshot: PodState) {
        let dir = self.state.clone();
        let result = tokio::task::spawn_blocking(move || dir.save(&snapshot)).await;
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            // The batch is in the store and in its manifest (or durably spooled); a lost
            // checkpoint only means it is shipped again, to the same key.
            self.metrics.state_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, dir = %self.state.describe(), "cannot write checkpoint; shipping continues");
        }
    }

    fn pod_state(&self, id: &PodIdentity) -> Arc<Mutex<Pod>> {
        let mut pods = self.lock_pods();
        let state = pods
            .entry(id.pod_uid.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Pod {
                    state: PodState::new(id.clone()),
                    written_at: None,
                }))
            })
            .clone();
        self.metrics.pod_states.store(pods.len() as u64, Relaxed);
        state
    }

    /// For a spooled batch of an earlier run whose pod state is gone: start from the manifest
    /// in the store, so recording the batch does not drop the objects listed before it.
    async fn pod_state_or_recover(&self, id: &PodIdentity) -> Arc<Mutex<Pod>> {
        if !self.lock_pods().contains_key(&id.pod_uid) {
            self.recover(id).await;
        }
        self.pod_state(id)
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Pod>>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_owed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.owed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn went_down(&self, e: &StoreError) {
        if !self.down.swap(true, Relaxed) {
            tracing::error!(error = %e, "store unavailable; batches go to the spool until it answers again");
        }
    }

    /// Resolves when the shutdown grace period is over (never before).
    async fn grace_over(&self) {
        let mut rx = self.expired.clone();
        if rx.wait_for(|over| *over).await.is_err() {
            // No clock any more (the run is ending on its own): the grace never runs out.
            std::future::pending::<()>().await;
        }
    }

    /// Back off before the next try; false when the grace period ended meanwhile.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        let wait = backoff.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.grace_over() => false,
        }
    }

    /// Up to `attempts` tries with exponential backoff and jitter (drain runs stop at once on
    /// a fatal error); each change of state is reported once, not every attempt. The end of the
    /// shutdown grace period cuts a try short.
    async fn put_with_retry(
        &self,
        key: &str,
        body: Bytes,
        content: Content,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let mut backoff = BACKOFF;
        let mut failures = 0u32;
        loop {
            let result = tokio::select! {
                biased;
                _ = self.grace_over() => Err(StoreError::transient("shutdown grace period over")),
                r = self.store.put(key, body.clone(), content) => r,
            };
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            failures += 1;
            self.metrics.upload_errors.fetch_add(1, Relaxed);
            let fatal_now = self.cfg.give_up && e.kind == ErrorKind::Fatal;
            if fatal_now || failures >= attempts.max(1) || *self.expired.borrow() {
                return Err(e);
            }
            if failures == 1 {
                tracing::warn!(error = %e, "upload failed; retrying with backoff");
            }
            if !self.pause(&mut backoff).await {
                return Err(e);
            }
        }
    }
}
