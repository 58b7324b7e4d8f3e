//! The follower: the reading side of the agent on one thread. It discovers pods and streams
//! (inotify events plus a periodic rescan), gives each stream its metadata, pumps streams that
//! have new bytes, and closes batches on size, age, quiet, memory pressure and stream end.
//! The reading itself is the file-following core's (`follow`): this is the policy that drives
//! it, and the only part of the reading side that knows the metadata source and the shipper.
//!
//! Work per event does not grow with the number of streams: streams are indexed by pod, the
//! dirty queue holds each stream once, open batch bytes are a running count, and batch
//! deadlines sit in a timer heap. Only the rescan and the once-a-second gauges walk every
//! stream.

use crate::checkpoint::PodState;
use crate::clock::{now_ms, now_nanos, now_unix};
use crate::commit::Work;
use crate::config::Config;
use crate::contract::{PodIdentity, StreamMeta};
use crate::follow::{self, PumpState, Sealed, StreamFiles, StreamTail, TailContext};
use crate::meta::{AttemptBook, Identities, JobIdentity, Lookup, MetadataSource, PodDir, RunState};
use crate::metrics::Metrics;
use crate::stop::Stop;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

type StreamKey = (String, String, u32);

/// What wakes the follower besides its timers.
#[derive(Debug)]
pub enum Wake {
    /// Something changed at this path under the log dir.
    Path(PathBuf),
    /// inotify lost events (or failed): look at everything.
    Rescan,
    /// The metadata source has news of this pod (e.g. a container terminated).
    Pod(String),
}

/// How long after a container's termination its file is trusted to be complete: the runtime
/// may still be copying its last output when the API says it exited (`finishedAt` has
/// one-second precision).
const END_GRACE_SECS: i64 = 3;

/// Bytes one stream may read before others get a turn.
const PUMP_BUDGET: usize = 4 << 20;
/// Open batches of all streams together; above it the oldest open batch is closed early. With
/// thousands of live streams this, not the batch age, sets how big their objects get: every
/// object costs a PUT (a file, its folder's fsync) and a state-file write, so the budget trades
/// memory for objects (docs/performance.md).
const OPEN_BATCH_BUDGET: usize = 16 << 20;
/// Over the budget, a batch holding at least this much is squeezed (`Batch::squeeze`) rather
/// than closed: compressed, its lines take a fraction of the memory and the batch still closes
/// on age, so many streams do not each close an object every few KiB. Less than this is closed:
/// squeezing a few lines at a time would compress badly.
const SQUEEZE_MIN: usize = 4096;

pub struct Follower {
    cfg: Config,
    node: String,
    ctx: TailContext,
    streams: HashMap<StreamKey, StreamTail>,
    pods: HashMap<String, Arc<PodIdentity>>,
    /// Streams already finished in this run, so a rescan does not start them again.
    ended: HashSet<StreamKey>,
    states: HashMap<String, PodState>,
    book: AttemptBook,
    /// The streams of each pod, so an event about a pod touches only its streams.
    by_pod: HashMap<String, Vec<StreamKey>>,
    /// Streams to pump, each once (`queued` mirrors the queue).
    dirty: VecDeque<StreamKey>,
    queued: HashSet<StreamKey>,
    /// Uncompressed bytes in open batches, all streams together (kept as they change).
    open_bytes: usize,
    /// Streams whose open batch holds lines not yet squeezed, by when the first of them came:
    /// over the memory budget the oldest (the biggest, as a rule) is squeezed first.
    unsqueezed: AgeIndex,
    /// Streams whose open batch holds squeezed lines, by its first squeeze: when nothing is
    /// worth squeezing any more, the first of these is closed.
    squeezed: AgeIndex,
    /// When each stream with an open batch is next due to be looked at for closing (at most
    /// one entry per stream; an entry found early is pushed again at the stream's real due).
    timers: BinaryHeap<Reverse<(Instant, StreamKey)>>,
    timed: HashSet<StreamKey>,
    /// Streams whose container may have ended: checked against the source once at EOF.
    ending: HashSet<StreamKey>,
    tx: mpsc::Sender<Work>,
    stop: Arc<Stop>,
    /// Asks the store what landed for a pod with no state (lost or corrupt state file).
    recover: Recover,
    /// Pods whose first line is older than this may have shipped before: worth a recovery.
    started_nanos: i128,
    source: Option<Arc<dyn MetadataSource>>,
    /// Pods the metadata source did not know yet, with when they were first seen.
    waiting: HashMap<String, Instant>,
    /// Pods not owned by a Job (not archived).
    ignored: HashSet<String>,
    /// Pods with a log file that cannot be read (already reported).
    refused: HashSet<String>,
    /// Every pinned identity, shared with the footprint sampler.
    identities: Identities,
    /// Following (not draining): open each stream as soon as it is found.
    open_early: bool,
    /// For waiting on the shipper's queue without polling.
    rt: tokio::runtime::Handle,
    /// Pod folders as they were when last listed: a rescan lists them again only once
    /// something in them changed.
    settled: HashMap<PathBuf, follow::FolderStamp>,
    /// inotify lost events: rescan at the next turn.
    rescan_now: bool,
    /// Pod folders an event showed in the last `YOUNG_FOR`, looked at again every second: files
    /// created in a new folder before inotify watches it raise no event, and the rescan that
    /// would find them may be a minute away.
    young: HashMap<PathBuf, (PodDir, Instant)>,
    /// Pods with a stream, for the gauge; counted again only after streams came or went.
    pods_with_streams: Option<u64>,
}

pub type Recover = Box<dyn Fn(&PodIdentity) -> Option<PodState> + Send>;

/// How long a pod folder found through an event is looked at again every second.
const YOUNG_FOR: Duration = Duration::from_secs(10);

/// Spare batch buffers are freed once no file changed for this long.
const SPARES_KEPT_WHILE_QUIET: Duration = Duration::from_secs(10);

/// A job's attempt numbers are forgotten this long after its last pod left the node.
const ATTEMPTS_KEPT: Duration = Duration::from_secs(3600);

/// What the follower works with besides its config: what an earlier run left, where batches
/// go, and the rest of the agent it reports to.
pub struct FollowerDeps {
    /// Pod states loaded at start: pinned identities and checkpoints.
    pub states: HashMap<String, PodState>,
    /// The shipper's queue: sealed batches and gone pods.
    pub tx: mpsc::Sender<Work>,
    pub stop: Arc<Stop>,
    pub metrics: Arc<Metrics>,
    /// Job metadata (the Kubernetes API); `None`: from log paths.
    pub source: Option<Arc<dyn MetadataSource>>,
    /// Every pinned identity, shared with the footprint recorder.
    pub identities: Identities,
    /// Asks the store what landed for a pod with no state (lost or corrupt state file).
    pub recover: Recover,
}

impl Follower {
    /// Files are opened only inside `log_dir` and `allowed_roots`.
    pub fn new(cfg: Config, node: String, deps: FollowerDeps) -> Follower {
        let FollowerDeps {
            states,
            tx,
            stop,
            metrics,
            source,
            identities,
            recover,
        } = deps;
        let mut roots = cfg.allowed_roots.clone();
        roots.push(cfg.log_dir.clone());
        let ctx = TailContext::new(
            follow::resolve_roots(&roots),
            cfg.max_line_bytes,
            cfg.batch.max_bytes,
            metrics,
        );
        Follower {
            recover,
            open_early: false,
            rt: tokio::runtime::Handle::current(),
            settled: HashMap::new(),
            rescan_now: false,
            young: HashMap::new(),
            pods_with_streams: None,
            started_nanos: now_nanos(),
            identities,
            source,
            waiting: HashMap::new(),
            ignored: HashSet::new(),
            refused: HashSet::new(),
            cfg,
            node,
            ctx,
            streams: HashMap::new(),
            pods: HashMap::new(),
            ended: HashSet::new(),
            states,
            book: AttemptBook::default(),
            by_pod: HashMap::new(),
            dirty: VecDeque::new(),
            queued: HashSet::new(),
            open_bytes: 0,
            unsqueezed: AgeIndex::default(),
            squeezed: AgeIndex::default(),
            timers: BinaryHeap::new(),
            timed: HashSet::new(),
            ending: HashSet::new(),
            tx,
            stop,
        }
    }

    /// `--drain`: everything present up to EOF, every batch closed, then return.
    pub fn drain(mut self) {
        self.rescan();
        self.settle_waiting();
        let total: u64 = self.streams.values().map(StreamTail::bytes_to_read).sum();
        self.ctx.metrics.drain_bytes_total.store(total, Relaxed);
        let keys: Vec<StreamKey> = self.sorted_keys();
        for key in keys {
            let Some(mut tail) = self.streams.remove(&key) else {
                continue;
            };
            let mut sealed = Vec::new();
            let complete = loop {
                while tail.pump(&mut self.ctx, PUMP_BUDGET, &mut sealed) == PumpState::More {
                    self.send_all(&mut sealed);
                }
                // A container that ended just now may still have output on its way.
                match self.run_ended(&key) {
                    Some(wait) if !wait.is_zero() && !self.stop.requested() => {
                        std::thread::sleep(wait)
                    }
                    ended => break ended.is_some(),
                }
            };
            if tail.has_unsealed() || complete {
                sealed.push(tail.seal(complete));
            }
            self.send_all(&mut sealed);
            tail.close();
        }
    }

    /// Whether the source says the stream's container run is over: `Some(wait)` with how long
    /// until its file can be trusted to be complete (zero: now).
    fn run_ended(&self, key: &StreamKey) -> Option<Duration> {
        let source = self.source.as_ref()?;
        match source.run_state(&key.0, &key.1, key.2) {
            RunState::Ended { finished_unix } => {
                let now = now_unix();
                let trusted = finished_unix.map_or(now, |t| t + END_GRACE_SECS);
                Some(Duration::from_secs(
                    trusted.saturating_sub(now).max(0) as u64
                ))
            }
            RunState::Running | RunState::Unknown => None,
        }
    }

    /// Pods whose metadata is not known yet get their bounded wait here, since a drain looks at
    /// each pod once: they ship with what the source says by then, or with path metadata.
    fn settle_waiting(&mut self) {
        let give_up = Instant::now() + Duration::from_secs(self.cfg.metadata_wait_secs + 1);
        while !self.waiting.is_empty() && !self.stop.requested() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(200));
            self.rescan_waiting();
        }
    }

    /// The long-running agent: until `stop` is set, then close every batch and return.
    pub fn follow(mut self) {
        let (ev_tx, ev_rx) = std_mpsc::channel();
        if let Some(source) = &self.source {
            let tx = std::sync::Mutex::new(ev_tx.clone());
            source.on_change(Arc::new(move |uid: &str| {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(Wake::Pod(uid.to_string()));
                }
            }));
        }
        let _watcher = self.watch(ev_tx);
        self.open_early = true;
        // Thousands of batches stay open under one budget: lines without their metadata.
        self.ctx.compact = true;
        self.rescan();
        let rescan_every = Duration::from_secs(self.cfg.rescan_interval_secs.max(1));
        let mut next_rescan = Instant::now() + rescan_every;
        let mut last_event = Instant::now();
        let mut next_tick = Instant::now();
        while !self.stop.requested() {
            // Once a second, not every turn: each walks every stream, and idle agents on busy
            // nodes have thousands.
            let tick = Instant::now() >= next_tick;
            if tick {
                next_tick = Instant::now() + Duration::from_secs(1);
                self.publish_gauges();
                self.revisit_young();
                // Containers that ended within the grace: look again.
                let ending: Vec<StreamKey> = self.ending.iter().cloned().collect();
                for key in ending {
                    self.mark_dirty(key);
                }
            }
            if std::mem::take(&mut self.rescan_now) {
                next_rescan = Instant::now();
            }
            if Instant::now() >= next_rescan
                || (tick && !self.waiting.is_empty() && self.dirty.is_empty())
            {
                self.rescan_waiting();
            }
            if Instant::now() >= next_rescan {
                self.rescan();
                next_rescan = Instant::now() + rescan_every;
            }
            self.pump_dirty();
            let next_seal = self.seal_due();
            // Sleep until the next thing is due (an event wakes it earlier); at most a second,
            // which is also how long a stop request may wait.
            let wake = next_seal
                .unwrap_or(next_tick)
                .min(next_tick)
                .min(next_rescan);
            let wait = wake.saturating_duration_since(Instant::now());
            match ev_rx.recv_timeout(wait.min(Duration::from_secs(1))) {
                Ok(wake) => {
                    last_event = Instant::now();
                    self.on_wake(wake);
                    while let Ok(wake) = ev_rx.try_recv() {
                        self.on_wake(wake);
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if last_event.elapsed() >= SPARES_KEPT_WHILE_QUIET {
                        crate::batch::drop_spares();
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(wait.min(Duration::from_millis(200)))
                }
            }
        }
        // Shutting down: read what is there, close every batch.
        for key in self.sorted_keys() {
            self.mark_dirty(key);
        }
        self.pump_dirty();
        let mut sealed: Vec<Sealed> = self
            .streams
            .values_mut()
            .filter(|t| t.has_unsealed())
            .map(|t| t.seal(false))
            .collect();
        self.send_all(&mut sealed);
    }

    fn watch(&self, ev_tx: std_mpsc::Sender<Wake>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let handler = move |res: notify::Result<notify::Event>| {
            // Events were lost (queue overflow) or the watch failed: rescan now, so the
            // periodic rescan is only a safety net and can be rare.
            let lost = res.as_ref().map_or(true, |ev| ev.need_rescan());
            if lost {
                let _ = ev_tx.send(Wake::Rescan);
            }
            if let Ok(ev) = res {
                // Our own reads raise open/access events: reacting to them would loop forever.
                if matches!(
                    ev.kind,
                    notify::EventKind::Access(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) {
                    return;
                }
                for p in ev.paths {
                    let _ = ev_tx.send(Wake::Path(p));
                }
            }
        };
        let mut w = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; relying on rescans");
                return None;
            }
        };
        if let Err(e) = w.watch(&self.cfg.log_dir, notify::RecursiveMode::Recursive) {
            tracing::warn!(error = %e, dir = %self.cfg.log_dir.display(), "cannot watch log dir; relying on rescans");
        }
        Some(w)
    }

    fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Path(path) => self.on_path(&path),
            Wake::Rescan => {
                tracing::debug!("inotify lost events; rescanning");
                self.rescan_now = true;
            }
            Wake::Pod(uid) => {
                // Its streams are read to the end, then checked against the source.
                for key in self.by_pod.get(&uid).cloned().unwrap_or_default() {
                    self.ending.insert(key.clone());
                    self.mark_dirty(key);
                }
            }
        }
    }

    /// An event under the log dir: mark its stream dirty, or discover its pod.
    fn on_path(&mut self, path: &Path) {
        tracing::trace!(path = %path.display(), "event");
        let Ok(rel) = path.strip_prefix(&self.cfg.log_dir) else {
            return;
        };
        let mut parts = rel.iter().filter_map(|p| p.to_str());
        let Some(pod_folder) = parts.next() else {
            return;
        };
        let Some(pod) = PodDir::parse(pod_folder) else {
            return;
        };
        let container = parts.next();
        let known: Vec<StreamKey> = self
            .by_pod
            .get(&pod.uid)
            .into_iter()
            .flatten()
            .filter(|k| container.is_none_or(|c| c == k.1))
            .cloned()
            .collect();
        let file_is_new = parts
            .next()
            .and_then(follow::LogName::parse)
            .is_some_and(|n| match n {
                follow::LogName::Current(r) => container.is_some_and(|c| {
                    !self
                        .streams
                        .contains_key(&(pod.uid.clone(), c.to_string(), r))
                }),
                _ => false,
            });
        if known.is_empty() || file_is_new {
            let path = self.cfg.log_dir.join(pod_folder);
            self.discover_pod(&pod, &path);
            let first_seen = Instant::now();
            self.young.entry(path).or_insert((pod, first_seen));
        } else {
            for key in known {
                self.mark_dirty(key);
            }
        }
    }

    /// Queue a stream for pumping, once however many events name it.
    fn mark_dirty(&mut self, key: StreamKey) {
        if self.queued.insert(key.clone()) {
            self.dirty.push_back(key);
        }
    }

    fn rescan(&mut self) {
        let Some((pods, _skipped)) = follow::read_pod_folders(&self.cfg.log_dir).ok() else {
            tracing::warn!(dir = %self.cfg.log_dir.display(), "cannot list the log dir; will retry");
            return;
        };
        self.forget_gone(&pods);
        let present: HashSet<&Path> = pods.iter().map(|(_, p)| p.as_path()).collect();
        self.settled
            .retain(|path, _| present.contains(path.as_path()));
        let mut listed = Vec::new();
        let mut found = Vec::new();
        for (pod, path) in &pods {
            let unchanged = self.settled.get(path).is_some_and(|s| s.unchanged());
            if self.namespace_allowed(&pod.namespace) && !unchanged {
                found.extend(follow::pod_streams(pod, path));
                listed.push((pod, path));
            }
        }
        self.enter_attempts(&found);
        for files in found {
            self.add_stream(files);
        }
        // A drain lists each folder once: stamps would only cost memory.
        if self.open_early {
            for (pod, path) in listed {
                self.stamp(pod, path);
            }
        }
        for key in self.sorted_keys() {
            self.mark_dirty(key);
        }
    }

    /// Remembers a listed pod folder as it is now: until a folder or file in it changes,
    /// listing it again would find nothing new. Not for pods waiting for their metadata (they
    /// are looked at again by `rescan_waiting`) or with a file that could not be opened (a
    /// permission fixed later changes neither times nor sizes).
    fn stamp(&mut self, pod: &PodDir, path: &Path) {
        let retry = self.waiting.contains_key(&pod.uid) || self.refused.contains(&pod.uid);
        match (!retry).then(|| follow::FolderStamp::take(path)).flatten() {
            Some(stamp) => self.settled.insert(path.to_path_buf(), stamp),
            None => self.settled.remove(path),
        };
    }

    fn revisit_young(&mut self) {
        self.young.retain(|_, (_, seen)| seen.elapsed() < YOUNG_FOR);
        let young: Vec<(PodDir, PathBuf)> = self
            .young
            .iter()
            .map(|(path, (pod, _))| (pod.clone(), path.clone()))
            .collect();
        for (pod, path) in young {
            self.discover_pod(&pod, &path);
        }
    }

    /// Pods waiting for their metadata: look again.
    fn rescan_waiting(&mut self) {
        let waiting: Vec<String> = self.waiting.keys().cloned().collect();
        let (pods, _) = follow::pod_folders(&self.cfg.log_dir);
        for (pod, path) in pods.iter().filter(|(p, _)| waiting.contains(&p.uid)) {
            self.discover_pod(pod, path);
        }
    }

    /// Pods whose folder is gone and whose streams have all ended: forget them here, and tell
    /// the shipper, so memory and state files do not grow with every pod the node ever ran.
    fn forget_gone(&mut self, present: &[(PodDir, PathBuf)]) {
        let present: HashSet<&str> = present.iter().map(|(p, _)| p.uid.as_str()).collect();
        let reading: HashSet<&str> = self.streams.keys().map(|k| k.0.as_str()).collect();
        let known = self.pods.keys().chain(self.states.keys());
        let known = known.chain(self.waiting.keys()).chain(&self.ignored);
        let known = known
            .chain(&self.refused)
            .chain(self.ended.iter().map(|k| &k.0));
        let gone: HashSet<String> = known
            .filter(|uid| !present.contains(uid.as_str()) && !reading.contains(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            self.pods.remove(&uid);
            self.states.remove(&uid);
            self.waiting.remove(&uid);
            self.ignored.remove(&uid);
            self.refused.remove(&uid);
            self.book.forget(&uid);
            if let Ok(mut all) = self.identities.write() {
                all.remove(&uid);
            }
            if self.tx.blocking_send(Work::PodGone(uid)).is_err() {
                return;
            }
        }
        self.ended.retain(|k| present.contains(k.0.as_str()));
        self.book.prune(ATTEMPTS_KEPT);
    }

    fn discover_pod(&mut self, pod: &PodDir, path: &Path) {
        if !self.namespace_allowed(&pod.namespace) {
            return;
        }
        let found = follow::pod_streams(pod, path);
        self.enter_attempts(&found);
        for files in found {
            self.add_stream(files);
        }
    }

    fn namespace_allowed(&self, ns: &str) -> bool {
        self.cfg.namespace_allowed(ns)
    }

    /// Path-only attempts need every pod's first log line before any number is handed out.
    fn enter_attempts(&mut self, found: &[StreamFiles]) {
        for files in found {
            if self.pods.contains_key(&files.pod.uid) || self.states.contains_key(&files.pod.uid) {
                continue;
            }
            if let Some(nanos) = self.first_line(files) {
                self.book.enter(
                    &files.pod.namespace,
                    &JobIdentity::from_path(&files.pod),
                    &files.pod.uid,
                    nanos,
                );
            }
        }
    }

    fn add_stream(&mut self, files: StreamFiles) {
        let key = (
            files.pod.uid.clone(),
            files.container.clone(),
            files.restart,
        );
        if self.streams.contains_key(&key) || self.ended.contains(&key) {
            return;
        }
        let Some(identity) = self.identity(&files) else {
            tracing::trace!(pod = %files.pod.pod, "no identity yet");
            return;
        };
        tracing::debug!(pod = %files.pod.pod, container = %files.container, restart = files.restart, "following stream");
        let checkpoint = self
            .states
            .get(&files.pod.uid)
            .and_then(|s| s.stream(&files.container, files.restart))
            .cloned();
        // Complete in an earlier run (terminated and read to its end): nothing more to read.
        if self
            .states
            .get(&files.pod.uid)
            .and_then(|s| s.find(&files.container, files.restart))
            .is_some_and(|s| s.complete)
        {
            self.ended.insert(key);
            return;
        }
        let meta: StreamMeta = identity.stream(&files.container, files.restart);
        let mut tail = StreamTail::new(meta, &files, checkpoint.as_ref(), &self.ctx.roots);
        if self.open_early {
            tail.open_early(&self.ctx);
        }
        self.streams.insert(key.clone(), tail);
        self.by_pod
            .entry(key.0.clone())
            .or_default()
            .push(key.clone());
        self.pods_with_streams = None;
        // Its container may have ended already (a restart, a backfill).
        self.ending.insert(key.clone());
        self.mark_dirty(key);
    }

    /// A stream is over: its last batch goes, its file is closed, and it is not followed again.
    fn end_stream(&mut self, key: &StreamKey, sealed: &mut Vec<Sealed>) {
        let Some(mut tail) = self.streams.remove(key) else {
            return;
        };
        self.open_bytes -= tail.batch.held();
        sealed.push(tail.seal(true));
        tail.close();
        self.track_age(key);
        if let Some(keys) = self.by_pod.get_mut(&key.0) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_pod.remove(&key.0);
            }
        }
        self.ending.remove(key);
        self.pods_with_streams = None;
        self.ended.insert(key.clone());
    }

    /// Pinned metadata of a pod (from its state file, or fixed when first seen). A pod with no
    /// log line yet has no attempt number yet: it waits for its first line.
    fn identity(&mut self, files: &StreamFiles) -> Option<Arc<PodIdentity>> {
        if let Some(id) = self.pods.get(&files.pod.uid) {
            return Some(id.clone());
        }
        if self.ignored.contains(&files.pod.uid) {
            return None;
        }
        let id = match self.states.get(&files.pod.uid) {
            Some(state) => state.identity().clone(),
            None => {
                let job = self.job_identity(&files.pod)?;
                let first_line = self.first_line(files)?;
                let attempt = job.attempt.unwrap_or_else(|| {
                    self.book
                        .attempt(&files.pod.namespace, &job, &files.pod.uid)
                });
                let id = job.pin(&self.cfg.cluster, &self.node, &files.pod, attempt);
                if first_line < self.started_nanos {
                    if let Some(state) = (self.recover)(&id) {
                        self.states.insert(id.pod_uid.clone(), state);
                    }
                }
                id
            }
        };
        let id = Arc::new(id);
        self.pods.insert(files.pod.uid.clone(), id.clone());
        if let Ok(mut all) = self.identities.write() {
            all.insert(files.pod.uid.clone(), id.clone());
        }
        Some(id)
    }

    /// The metadata source's answer, or the path's once the source had its chance.
    fn job_identity(&mut self, pod: &PodDir) -> Option<JobIdentity> {
        let Some(source) = &self.source else {
            return Some(JobIdentity::from_path(pod));
        };
        match source.lookup(pod) {
            Lookup::Known(id) => {
                self.waiting.remove(&pod.uid);
                Some(id)
            }
            Lookup::NotAJob if self.cfg.include_pods_without_job => {
                self.waiting.remove(&pod.uid);
                Some(JobIdentity::from_path(pod))
            }
            Lookup::NotAJob => {
                tracing::debug!(pod = %pod.pod, namespace = %pod.namespace, "not owned by a Job; not archived");
                self.waiting.remove(&pod.uid);
                self.ignored.insert(pod.uid.clone());
                None
            }
            Lookup::Unknown => {
                let since = *self
                    .waiting
                    .entry(pod.uid.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() < Duration::from_secs(self.cfg.metadata_wait_secs) {
                    return None;
                }
                tracing::warn!(pod = %pod.pod, namespace = %pod.namespace, waited_secs = self.cfg.metadata_wait_secs, "no API metadata for this pod; shipping with metadata from its log path");
                self.waiting.remove(&pod.uid);
                Some(JobIdentity::from_path(pod))
            }
        }
    }

    /// A log file that cannot be opened (outside the allowed roots, a FIFO or a folder in
    /// its place) is skipped, and reported once per pod rather than at every rescan.
    fn first_line(&mut self, files: &StreamFiles) -> Option<i128> {
        match files.first_line_nanos(&self.ctx.roots) {
            Ok(nanos) => nanos,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound
                    && self.refused.insert(files.pod.uid.clone())
                {
                    self.ctx.metrics.read_errors.fetch_add(1, Relaxed);
                    tracing::warn!(pod = %files.pod.pod, container = %files.container, error = %e, "cannot read log file; skipped");
                }
                None
            }
        }
    }

    fn pump_dirty(&mut self) {
        let mut sealed = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = self.dirty.pop_front() {
            self.queued.remove(&key);
            if self.stop.requested() && !seen.insert(key.clone()) {
                break;
            }
            let Some(tail) = self.streams.get_mut(&key) else {
                continue;
            };
            let (before, records) = (tail.batch.held(), tail.batch.records);
            let state = tail.pump(&mut self.ctx, PUMP_BUDGET, &mut sealed);
            let grew = tail.batch.records != records || !sealed.is_empty();
            if grew {
                tail.batch.touched = Instant::now();
            }
            let after = tail.batch.held();
            self.open_bytes = (self.open_bytes + after).saturating_sub(before);
            match state {
                PumpState::More => self.mark_dirty(key.clone()),
                PumpState::Idle => {
                    if self.ending.contains(&key) {
                        match self.run_ended(&key) {
                            Some(wait) if wait.is_zero() => self.end_stream(&key, &mut sealed),
                            Some(_) => {} // looked at again next tick
                            None => {
                                self.ending.remove(&key);
                            }
                        }
                    }
                }
                PumpState::Ended => self.end_stream(&key, &mut sealed),
            }
            self.track_age(&key);
            while self.open_bytes > OPEN_BATCH_BUDGET && self.free_memory(&mut sealed) {}
            if self.streams.get(&key).is_some_and(|t| t.has_unsealed()) {
                self.schedule(key.clone());
            }
            self.send_all(&mut sealed);
        }
    }

    /// Close a stream's open batch (it goes to `sealed`).
    fn seal_open(&mut self, key: &StreamKey, sealed: &mut Vec<Sealed>) {
        if let Some(tail) = self.streams.get_mut(key).filter(|t| t.has_unsealed()) {
            self.open_bytes -= tail.batch.held();
            sealed.push(tail.seal(false));
        }
        self.track_age(key);
    }

    /// Over the budget: squeeze the lines that waited longest (their batch stays open), or,
    /// when those are too few to be worth it, close the batch squeezed first (memory is then
    /// mostly compressed lines). False when no batch is open.
    fn free_memory(&mut self, sealed: &mut Vec<Sealed>) -> bool {
        let level = self.cfg.batch.compression_level;
        if let Some(key) = self.unsqueezed.first() {
            if let Some(t) = self.streams.get_mut(&key) {
                if t.batch.data.len() >= SQUEEZE_MIN {
                    let before = t.batch.held();
                    t.batch.squeeze(level);
                    self.open_bytes = (self.open_bytes + t.batch.held()).saturating_sub(before);
                    self.ctx.metrics.batches_squeezed.fetch_add(1, Relaxed);
                    self.track_age(&key);
                    return true;
                }
            }
        }
        match self.squeezed.first().or_else(|| self.unsqueezed.first()) {
            Some(key) => {
                self.seal_open(&key, sealed);
                true
            }
            None => false,
        }
    }

    /// Keep the age indexes in step with a stream's open batch (opened, grown, squeezed,
    /// closed, or another one).
    fn track_age(&mut self, key: &StreamKey) {
        let batch = self.streams.get(key).map(|t| &t.batch);
        let lines = batch.filter(|b| !b.data.is_empty()).map(|b| b.data_since);
        let squeezed = batch.and_then(|b| b.squeezed_at);
        self.unsqueezed.set(key, lines);
        self.squeezed.set(key, squeezed);
    }

    /// Make sure a stream with an open batch has a timer.
    fn schedule(&mut self, key: StreamKey) {
        if self.open_early && !self.timed.contains(&key) {
            if let Some(due) = self.streams.get(&key).map(|t| self.due(t)) {
                self.timed.insert(key.clone());
                self.timers.push(Reverse((due, key)));
            }
        }
    }

    /// When a stream's open batch is to be closed: `batch.max_age_secs` after its first record,
    /// or `batch.quiet_secs` after the stream last grew, whichever comes first.
    fn due(&self, t: &StreamTail) -> Instant {
        let max_age = Duration::from_secs(self.cfg.batch.max_age_secs);
        let quiet = Duration::from_secs(self.cfg.batch.quiet_secs);
        (t.batch.opened + max_age).min(t.batch.touched + quiet)
    }

    /// Gauges for /metrics and the heartbeat for /healthz.
    fn publish_gauges(&mut self) {
        let m = &self.ctx.metrics;
        let now = now_ms();
        m.heartbeat_unix_ms.store(now, Relaxed);
        m.streams_tracked.store(self.streams.len() as u64, Relaxed);
        m.files_open.store(
            self.streams.values().filter(|t| t.is_open()).count() as u64,
            Relaxed,
        );
        let streams = &self.streams;
        let pods = *self.pods_with_streams.get_or_insert_with(|| {
            let pods: HashSet<&str> = streams.keys().map(|k| k.0.as_str()).collect();
            pods.len() as u64
        });
        m.pods_tracked.store(pods, Relaxed);
        m.pods_pinned.store(self.pods.len() as u64, Relaxed);
        let oldest = self
            .streams
            .values()
            .filter(|t| !t.batch.is_empty())
            .map(|t| t.batch.opened.elapsed())
            .max();
        let oldest_ms = oldest
            .map(|age| now.saturating_sub(age.as_millis() as u64))
            .unwrap_or(0);
        m.oldest_unshipped_unix_ms.store(oldest_ms, Relaxed);
    }

    /// Closes the batches that are due; returns when the next timer is.
    fn seal_due(&mut self) -> Option<Instant> {
        let mut sealed = Vec::new();
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timers.pop() else {
                break;
            };
            self.timed.remove(&key);
            let Some(due) = self
                .streams
                .get(&key)
                .filter(|t| t.has_unsealed())
                .map(|t| self.due(t))
            else {
                continue;
            };
            if due <= now {
                self.seal_open(&key, &mut sealed);
            } else {
                self.timed.insert(key.clone());
                self.timers.push(Reverse((due, key)));
            }
        }
        self.send_all(&mut sealed);
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Waits while the shipper is saturated: back-pressure reaches the reading here. The
    /// heartbeat keeps going meanwhile: waiting for the store is not a stalled agent.
    fn send_all(&mut self, sealed: &mut Vec<Sealed>) {
        for s in sealed.drain(..) {
            let permit = loop {
                let heartbeat = &self.ctx.metrics.heartbeat_unix_ms;
                heartbeat.store(now_ms(), Relaxed);
                let tx = &self.tx;
                let wait =
                    async { tokio::time::timeout(Duration::from_secs(1), tx.reserve()).await };
                match self.rt.block_on(wait) {
                    Ok(Ok(permit)) => break permit,
                    Ok(Err(_closed)) => return,
                    Err(_still_full) => {}
                }
            };
            permit.send(Work::Batch(Box::new(s)));
        }
    }

    fn sorted_keys(&self) -> Vec<StreamKey> {
        let mut keys: Vec<StreamKey> = self.streams.keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Streams ordered by an instant, each at most once: the first in O(log n), a stream moved or
/// removed in O(log n).
#[derive(Default)]
struct AgeIndex {
    order: std::collections::BTreeSet<(Instant, StreamKey)>,
    at: HashMap<StreamKey, Instant>,
}

impl AgeIndex {
    fn set(&mut self, key: &StreamKey, now: Option<Instant>) {
        let was = self.at.get(key).copied();
        if now == was {
            return;
        }
        if let Some(was) = was {
            self.order.remove(&(was, key.clone()));
            self.at.remove(key);
        }
        if let Some(now) = now {
            self.order.insert((now, key.clone()));
            self.at.insert(key.clone(), now);
        }
    }

    fn first(&self) -> Option<StreamKey> {
        self.order.first().map(|(_, key)| key.clone())
    }
}

#[cfg(test)]
mod tests {
    //! The follower's policy in a drain, on a log dir laid out as the kubelet lays it out, with
    //! a metadata source that answers as told: which streams are read, with which identity,
    //! from where, and when a stream is complete. The reading itself is tested in follow/.

    use super::*;
    use crate::follow::StreamCheckpoint;
    use std::io::Write;
    use std::sync::Mutex;

    /// CRI lines `line i` of container `c`, one nanosecond apart.
    fn lines(c: &str, range: std::ops::Range<u32>) -> String {
        range
            .map(|i| format!("2026-11-27T14:00:00.{i:09}Z stdout F {c} line {i}\n"))
            .collect()
    }

    fn write(root: &Path, pod: &str, container: &str, name: &str, text: &str) {
        let dir = root.join(pod).join(container);
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// A log dir in a temp folder, canonical (files are opened only inside it).
    fn log_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        (tmp, root)
    }

    /// `text` appended to the file a container's runtime writes (`0.log`).
    fn current(root: &Path, pod: &str, container: &str, text: &str) {
        write(root, pod, container, "0.log", text);
    }

    /// A metadata source that answers from its tables: pods by uid (absent: `Unknown`), and
    /// container runs by (uid, container) (absent: `Running`).
    #[derive(Default)]
    struct Told {
        pods: Mutex<HashMap<String, Lookup>>,
        ended: Mutex<HashMap<(String, String), i64>>,
    }

    impl MetadataSource for Told {
        fn lookup(&self, pod: &PodDir) -> Lookup {
            match self.pods.lock().unwrap().get(&pod.uid) {
                Some(Lookup::Known(id)) => Lookup::Known(id.clone()),
                Some(Lookup::NotAJob) => Lookup::NotAJob,
                _ => Lookup::Unknown,
            }
        }
        fn run_state(&self, pod_uid: &str, container: &str, _restart: u32) -> RunState {
            let ended = self.ended.lock().unwrap();
            match ended.get(&(pod_uid.to_string(), container.to_string())) {
                Some(&t) => RunState::Ended {
                    finished_unix: Some(t),
                },
                None => RunState::Running,
            }
        }
    }

    struct Drained {
        /// Sealed batches in the order the follower sent them.
        sealed: Vec<Sealed>,
    }

    impl Drained {
        /// (pod, container, restart) of each batch, in order.
        fn streams(&self) -> Vec<(String, String, u32)> {
            self.sealed
                .iter()
                .map(|s| (s.meta.pod.clone(), s.meta.container.clone(), s.meta.restart))
                .collect()
        }

        /// The messages of one container's records, in order, with their offsets.
        fn records(&self, container: &str) -> Vec<(u64, String)> {
            self.of(container)
                .flat_map(|s| s.batch.data.split(|&b| b == b'\n'))
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                    let message = v["message"].as_str().unwrap().to_string();
                    (v["offset"].as_u64().unwrap(), message)
                })
                .collect()
        }

        fn of<'a>(&'a self, container: &'a str) -> impl Iterator<Item = &'a Sealed> + 'a {
            self.sealed
                .iter()
                .filter(move |s| s.meta.container == container)
        }
    }

    /// A drain of `root` by a follower with this source and these states from an earlier run.
    fn drain(
        root: &Path,
        source: Option<Arc<dyn MetadataSource>>,
        states: HashMap<String, PodState>,
    ) -> Drained {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _in_rt = rt.enter();
        let (tx, mut rx) = mpsc::channel(1024);
        let cfg = Config {
            node_name: "node-a".into(),
            log_dir: root.to_path_buf(),
            allowed_roots: Vec::new(),
            metadata_wait_secs: 0,
            ..Config::default()
        };
        let deps = FollowerDeps {
            states,
            tx,
            stop: Arc::new(Stop::default()),
            metrics: Arc::default(),
            source,
            identities: Identities::default(),
            recover: Box::new(|_| None),
        };
        let follower = Follower::new(cfg, "node-a".into(), deps);
        std::thread::spawn(move || follower.drain()).join().unwrap();
        let mut sealed = Vec::new();
        while let Ok(work) = rx.try_recv() {
            match work {
                Work::Batch(s) => sealed.push(*s),
                Work::PodGone(uid) => panic!("a drain of present folders sent PodGone({uid})"),
            }
        }
        Drained { sealed }
    }

    fn job(attempt: u32) -> Lookup {
        Lookup::Known(JobIdentity {
            job: "backup".into(),
            job_uid: Some("job-uid".into()),
            cronjob: Some("nightly".into()),
            completion_index: None,
            attempt: Some(attempt),
        })
    }

    #[test]
    fn without_a_source_every_stream_is_read_once_from_its_oldest_file_in_key_order() {
        let (_tmp, root) = log_dir();
        let pod_b = "default_backup-bcdfg_uid-b";
        let pod_a = "default_backup-hjklm_uid-a";
        write(
            &root,
            pod_b,
            "main",
            "0.log.20261127-140000",
            &lines("b", 0..3),
        );
        current(&root, pod_b, "main", &lines("b", 3..5));
        current(&root, pod_a, "main", &lines("a", 0..2));
        current(&root, pod_a, "sidecar", &lines("s", 0..2));

        let out = drain(&root, None, HashMap::new());

        // By pod uid, then container: one batch each, as the shipper lands them.
        let streams: Vec<_> = out.streams();
        assert_eq!(
            streams,
            [
                ("backup-hjklm".into(), "main".into(), 0),
                ("backup-hjklm".into(), "sidecar".into(), 0),
                ("backup-bcdfg".into(), "main".into(), 0),
            ]
        );
        let b: Vec<_> = out
            .of("main")
            .filter(|s| s.meta.pod_uid == "uid-b")
            .collect();
        let data = String::from_utf8(b[0].batch.data.clone()).unwrap();
        let messages: Vec<_> = (0..5).map(|i| format!("b line {i}")).collect();
        for (n, m) in messages.iter().enumerate() {
            assert!(data.contains(m.as_str()), "line {n} missing: {data}");
        }
        assert_eq!(b[0].batch.records, 5);
        assert_eq!(b[0].batch.first_offset, 0);
        assert_eq!(b[0].checkpoint.offset, (lines("b", 0..5).len()) as u64);
        // Path metadata: the job from the pod name, attempts numbered by first line.
        assert_eq!(b[0].meta.job, "backup");
        assert_eq!(b[0].meta.node, "node-a");
        // The folders are there and no source says the containers ended: nothing is complete.
        assert!(out.sealed.iter().all(|s| !s.complete));
    }

    #[test]
    fn a_run_the_source_says_ended_is_complete_and_a_running_one_is_not() {
        let (_tmp, root) = log_dir();
        let pod = "batch_backup-nightly-29400000-bcdfg_uid-1";
        current(&root, pod, "main", &lines("m", 0..4));
        current(&root, pod, "sidecar", &lines("s", 0..4));
        let told = Arc::new(Told::default());
        told.pods.lock().unwrap().insert("uid-1".into(), job(3));
        // Ended a minute ago: past the grace in which the runtime may still be writing.
        let ended = now_unix() - 60;
        told.ended
            .lock()
            .unwrap()
            .insert(("uid-1".into(), "main".into()), ended);

        let out = drain(&root, Some(told), HashMap::new());

        let main: Vec<_> = out.of("main").collect();
        let sidecar: Vec<_> = out.of("sidecar").collect();
        assert!(
            main.last().unwrap().complete,
            "main ended and was read to its end"
        );
        assert!(!sidecar.last().unwrap().complete, "sidecar still runs");
        // The API's identity, not the path's guess.
        assert_eq!(main[0].meta.attempt, 3);
        assert_eq!(main[0].meta.job_uid.as_deref(), Some("job-uid"));
        assert_eq!(main[0].meta.cronjob.as_deref(), Some("nightly"));
        assert_eq!(out.records("main").len(), 4);
    }

    #[test]
    fn a_pod_no_job_owns_is_never_read() {
        let (_tmp, root) = log_dir();
        current(
            &root,
            "default_web-bcdfg_uid-web",
            "nginx",
            &lines("w", 0..3),
        );
        current(
            &root,
            "default_backup-bcdfg_uid-job",
            "main",
            &lines("m", 0..3),
        );
        let told = Arc::new(Told::default());
        let mut pods = told.pods.lock().unwrap();
        pods.insert("uid-web".into(), Lookup::NotAJob);
        pods.insert("uid-job".into(), job(1));
        drop(pods);

        let out = drain(&root, Some(told), HashMap::new());

        assert_eq!(out.streams(), [("backup-bcdfg".into(), "main".into(), 0)]);
    }

    #[test]
    fn a_pod_the_source_does_not_know_ships_with_path_metadata_after_the_wait() {
        let (_tmp, root) = log_dir();
        current(
            &root,
            "default_backup-bcdfg_uid-1",
            "main",
            &lines("m", 0..2),
        );

        // The source never hears of the pod; the wait is 0 s here.
        let out = drain(&root, Some(Arc::new(Told::default())), HashMap::new());

        assert_eq!(out.streams(), [("backup-bcdfg".into(), "main".into(), 0)]);
        assert_eq!(out.sealed[0].meta.job_uid, None);
        assert_eq!(out.sealed[0].meta.job, "backup");
    }

    #[test]
    fn a_drain_resumes_each_stream_at_its_checkpoint_with_the_pinned_identity() {
        let (_tmp, root) = log_dir();
        let pod = "default_backup-bcdfg_uid-1";
        current(&root, pod, "main", &lines("m", 0..10));
        // An earlier run landed lines 0..6 and pinned attempt 4 (the path would say 1).
        let dir = PodDir::parse(pod).unwrap();
        let mut state = PodState::new(JobIdentity::from_path(&dir).pin("c", "node-a", &dir, 4));
        let landed = lines("m", 0..6).len() as u64;
        state.set_stream(StreamCheckpoint {
            container: "main".into(),
            restart: 0,
            offset: landed,
            file: None,
        });
        let states = HashMap::from([("uid-1".to_string(), state)]);

        let out = drain(&root, None, states);

        let records = out.records("main");
        let messages: Vec<_> = records.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(messages, ["m line 6", "m line 7", "m line 8", "m line 9"]);
        assert_eq!(records[0].0, landed);
        assert_eq!(out.sealed[0].batch.first_offset, landed);
        assert_eq!(out.sealed[0].meta.attempt, 4);
    }
}
