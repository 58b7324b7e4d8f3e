//! The footprint recorder: the agent's task beside the shipper that turns every Job pod on this
//! node into a footprint document (CONTRACT §3 and §5).
//!
//! Each pass (every `footprint.sample_interval_secs`) it takes the pods the follower pinned
//! (and, with the API, pods the API knows whose container never logged a line, such as one stuck
//! in CreateContainerConfigError), gives each its pod object or, without the API, its first and
//! last log-line times (from the pod's state file, which the shipper keeps up to date), samples
//! its cgroup, and writes its document at most every `footprint.write_interval_secs` while the
//! pod lives, then a last time once it has ended; then it forgets the pod.
//!
//! A pod has ended when its object is terminated, when it left the API, or (without the API)
//! when its log folder is gone. A document an earlier run of the agent wrote is read back once,
//! before the first write: a final one is kept as it is, a live one is folded into ours, since
//! after a restart the tracker starts empty and the pod's cgroup may already be gone.
//!
//! With a source of Events and Jobs (`RecorderDeps::records`), what each pass saw of every pod also
//! goes to the post-mortem collector (`postmortem::Collector`), which archives the attempts'
//! Events and the Jobs' final records.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::oneshot;

use super::cgroup::PodCgroups;
use super::{AttemptIdentity, AttemptTracker, ContainerFootprint, Footprint};
use crate::checkpoint::{StateDir, StateVersion};
use crate::clock::now_unix_f64;
use crate::config::Config;
use crate::contract::PodIdentity;
use crate::follow::{read_pod_folders, settled_mtime};
use crate::meta::{Identities, Lookup, MetadataSource, PodDir, PodObjects};
use crate::metrics::Metrics;
use crate::postmortem::{pod_state, ClusterRecords, Collector, Observation};
use crate::store::{Content, Store, StoreError};

/// What a pass needs besides the recorder's book; cloned into the blocking pool.
#[derive(Clone)]
struct Env {
    cfg: Arc<Config>,
    node: String,
    state: StateDir,
    identities: Identities,
    metadata: Option<Arc<dyn MetadataSource>>,
    pods: Option<Arc<dyn PodObjects>>,
    /// A post-mortem collector takes what each pass saw of every pod.
    collecting: bool,
}

/// The pods being followed, and those not to follow again while their log folder remains.
#[derive(Default)]
struct Book {
    pods: HashMap<String, Tracked>,
    /// Final document written (by this run or an earlier one).
    finished: HashSet<String>,
    /// The API says they belong to no Job.
    not_jobs: HashSet<String>,
    /// The log dir's pod folders by UID, and the log dir's time when they were listed.
    listing: Option<(SystemTime, Arc<HashMap<String, PodDir>>)>,
}

struct Tracked {
    id: Arc<PodIdentity>,
    tracker: AttemptTracker,
    key: String,
    /// Its object was seen in the API at least once, so its absence means it was deleted.
    in_api: bool,
    earlier: Earlier,
    written: Option<Written>,
    /// The version of the pod's state file last read for log-line times.
    state_read: Option<StateVersion>,
}

/// The document an earlier run of the agent left in the store for this attempt.
enum Earlier {
    Unchecked,
    Absent,
    Found(Box<Footprint>),
}

/// The content last written (`updated` cleared, so an unchanged document is not rewritten)
/// and when it was last written or found unchanged.
struct Written {
    doc: Footprint,
    at: f64,
}

/// A document built in a pass, for the write half.
struct Due {
    uid: String,
    doc: Footprint,
}

pub struct Recorder {
    env: Env,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Tries per write beyond the first: none while running (the next pass tries again), the
    /// configured number in a drain, which must not end without its footprints.
    retries: u32,
    book: Book,
    /// Whether the last pass had a store failure: logged when this changes, not every pass.
    failing: bool,
    collector: Option<Collector>,
}

/// What the recorder works with besides its config: where documents go, what the follower
/// pinned, and what the cluster says (all sources `None` without the API).
pub struct RecorderDeps {
    pub store: Arc<Store>,
    /// The pods' state files: log-line times without the API.
    pub state: StateDir,
    /// The pods the follower pinned (identity of each).
    pub identities: Identities,
    pub metrics: Arc<Metrics>,
    /// Job metadata of pods that have not logged a line yet.
    pub metadata: Option<Arc<dyn MetadataSource>>,
    /// Pod objects: requests, limits, the status timeline.
    pub pods: Option<Arc<dyn PodObjects>>,
    /// Events and Jobs for the post-mortem records.
    pub records: Option<Arc<dyn ClusterRecords>>,
}

impl Recorder {
    /// `drain`: one pass at the end, whose writes are retried (`store.max_retries`).
    pub fn new(cfg: &Config, node: &str, drain: bool, deps: RecorderDeps) -> Recorder {
        let RecorderDeps {
            store,
            state,
            identities,
            metrics,
            metadata,
            pods,
            records,
        } = deps;
        let retries = if drain { cfg.store.max_retries } else { 0 };
        let collector = records.map(|source| {
            Collector::new(
                source,
                store.clone(),
                metrics.clone(),
                cfg.store.upload_concurrency,
                retries,
            )
        });
        Recorder {
            env: Env {
                cfg: Arc::new(cfg.clone()),
                node: node.to_string(),
                state,
                identities,
                metadata,
                pods,
                collecting: collector.is_some(),
            },
            store,
            metrics,
            retries,
            book: Book::default(),
            failing: false,
            collector,
        }
    }

    /// The long-running agent: a pass every sample interval until `stop` fires (or its sender
    /// is dropped), then a last pass that writes every document that changed.
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let secs = self.env.cfg.footprint.sample_interval_secs.max(1);
        let mut every = tokio::time::interval(Duration::from_secs(secs));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.pass_logged(false).await,
                _ = &mut stop => break,
            }
        }
        self.pass_logged(true).await;
    }

    /// `--drain`: one sample of every pod and its document written, now.
    pub async fn drain(mut self) -> Result<usize, StoreError> {
        self.pass(now_unix_f64(), true).await
    }

    async fn pass_logged(&mut self, flush: bool) {
        match self.pass(now_unix_f64(), flush).await {
            Ok(_) if self.failing => {
                self.failing = false;
                tracing::info!("footprints and post-mortem records are written again");
            }
            Ok(_) => {}
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(error = %e, "cannot write footprints or post-mortem records; trying again every sample interval");
            }
            Err(_) => {}
        }
    }

    /// One pass at `now`: sample every pod and write the documents that are due (all that
    /// changed, with `flush`), then let the post-mortem collector act on what was seen.
    /// Returns how many footprints were written; a store failure is returned after everything
    /// else was done, and the documents it concerned stay due.
    pub async fn pass(&mut self, now: f64, flush: bool) -> Result<usize, StoreError> {
        let env = self.env.clone();
        let mut book = std::mem::take(&mut self.book);
        let (book, (due, seen)) = tokio::task::spawn_blocking(move || {
            let sampled = book.sample(&env, now, flush);
            (book, sampled)
        })
        .await
        .map_err(|e| StoreError::fatal(format!("footprint sampling failed: {e}")))?;
        self.book = book;
        let mut failure = self.check_earlier(&due).await.err();
        let writes = self.book.prepare(due, now, &self.env.identities);
        let (written, write_failure) = self.write(writes, now).await;
        failure = failure.or(write_failure);
        if let Some(collector) = &mut self.collector {
            if let Err(e) = collector.pass(seen, now).await {
                failure = failure.or(Some(e));
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Reads the earlier documents of the pods about to be written for the first time.
    async fn check_earlier(&mut self, due: &[Due]) -> Result<(), StoreError> {
        let unchecked: Vec<(String, String)> = due
            .iter()
            .filter_map(|d| {
                let t = self.book.pods.get(&d.uid)?;
                matches!(t.earlier, Earlier::Unchecked).then(|| (d.uid.clone(), t.key.clone()))
            })
            .collect();
        let store = &self.store;
        let found: Vec<(String, Result<Option<Bytes>, StoreError>)> = stream::iter(unchecked)
            .map(|(uid, key)| async move { (uid, store.get(&key).await) })
            .buffer_unordered(self.env.cfg.store.upload_concurrency)
            .collect()
            .await;
        let mut failure = None;
        for (uid, result) in found {
            let Some(t) = self.book.pods.get_mut(&uid) else {
                continue;
            };
            match result {
                Ok(data) => t.earlier = earlier_document(&t.key, data),
                Err(e) => failure = Some(e),
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Writes documents concurrently; returns how many landed and the last failure.
    async fn write(
        &mut self,
        writes: Vec<(String, String, Footprint)>,
        now: f64,
    ) -> (usize, Option<StoreError>) {
        let (store, retries) = (&self.store, self.retries);
        let results: Vec<(String, Footprint, Result<(), StoreError>)> = stream::iter(writes)
            .map(|(uid, key, doc)| async move {
                let body = Bytes::from(serde_json::to_vec(&doc).expect("footprint serializes"));
                let result = store
                    .put_with_retries(&key, body, Content::Json, retries)
                    .await;
                (uid, doc, result)
            })
            .buffer_unordered(self.env.cfg.store.upload_concurrency)
            .collect()
            .await;
        let mut written = 0;
        let mut failure = None;
        for (uid, doc, result) in results {
            match result {
                Ok(()) => {
                    written += 1;
                    self.metrics.footprints_written.fetch_add(1, Relaxed);
                    self.book.wrote(&uid, doc, now, &self.env.identities);
                }
                Err(e) => {
                    self.metrics.footprint_errors.fetch_add(1, Relaxed);
                    failure = Some(e);
                }
            }
        }
        (written, failure)
    }
}

impl Book {
    /// The blocking half of a pass: find pods, observe and sample them, build due documents;
    /// with a post-mortem collector, also what was seen of each pod.
    fn sample(&mut self, env: &Env, now: f64, flush: bool) -> (Vec<Due>, Vec<Observation>) {
        // None when the log dir cannot be read: nothing is then concluded from missing folders.
        let present = self.pod_folders(&env.cfg.log_dir);
        if let Some(present) = &present {
            self.finished.retain(|uid| present.contains_key(uid));
            self.not_jobs.retain(|uid| present.contains_key(uid));
        }
        // Pinned first: the follower's identity is the one the pod's logs are filed under.
        self.adopt_pinned(env);
        if let Some(present) = &present {
            self.adopt_api_known(env, present);
        }
        let write_every = env.cfg.footprint.write_interval_secs as f64;
        let cgroups = PodCgroups::new(&env.cfg.cgroup_root);
        let mut due = Vec::new();
        let mut seen = Vec::new();
        for (uid, t) in &mut self.pods {
            let pod = t.observe(env, now, present.as_deref());
            t.tracker.sample(&cgroups, now);
            if env.collecting {
                seen.push(Observation {
                    id: t.id.clone(),
                    state: pod.as_deref().map(pod_state),
                    ended: t.tracker.is_final(),
                });
            }
            if t.due(now, flush, write_every) {
                due.push(Due {
                    uid: uid.clone(),
                    doc: t.document(&env.state, now),
                });
            }
        }
        (due, seen)
    }

    /// The pod folders of the log dir, listed again only when the log dir changed (its time
    /// moves whenever a pod folder comes or goes): most passes find nothing new.
    fn pod_folders(&mut self, log_dir: &Path) -> Option<Arc<HashMap<String, PodDir>>> {
        let stamp = settled_mtime(log_dir);
        if let (Some(stamp), Some((seen, pods))) = (stamp, &self.listing) {
            if stamp == *seen {
                return Some(pods.clone());
            }
        }
        let (pods, _) = read_pod_folders(log_dir).ok()?;
        let pods = Arc::new(pods.into_iter().map(|(p, _)| (p.uid.clone(), p)).collect());
        self.listing = stamp.map(|s| (s, Arc::clone(&pods)));
        Some(pods)
    }

    /// Follows every pod the follower pinned, unless its footprint is already final.
    fn adopt_pinned(&mut self, env: &Env) {
        let pinned: Vec<Arc<PodIdentity>> = match env.identities.read() {
            Ok(all) => all.values().cloned().collect(),
            Err(_) => return,
        };
        for id in pinned {
            if self.finished.contains(&id.pod_uid) {
                // Pinned (again) after its last write: nothing more will be written for it.
                forget_identity(&env.identities, &id.pod_uid);
            } else if !self.pods.contains_key(&id.pod_uid) {
                self.pods.insert(id.pod_uid.clone(), Tracked::new(&id));
            }
        }
    }

    /// With the API: pods whose folder exists but which the follower has not pinned, because
    /// no container wrote a line (yet). They hold their requests all the same.
    fn adopt_api_known(&mut self, env: &Env, present: &HashMap<String, PodDir>) {
        let (Some(metadata), Some(_)) = (&env.metadata, &env.pods) else {
            return;
        };
        for (uid, dir) in present {
            if self.pods.contains_key(uid)
                || self.finished.contains(uid)
                || self.not_jobs.contains(uid)
                || !env.cfg.namespace_allowed(&dir.namespace)
            {
                continue;
            }
            match metadata.lookup(dir) {
                // Without an attempt number from the API, the follower numbers it from logs.
                Lookup::Known(job) => {
                    if let Some(attempt) = job.attempt {
                        let id = job.pin(&env.cfg.cluster, &env.node, dir, attempt);
                        self.pods.insert(uid.clone(), Tracked::new(&id));
                    }
                }
                Lookup::NotAJob => {
                    self.not_jobs.insert(uid.clone());
                }
                Lookup::Unknown => {}
            }
        }
    }

    /// Earlier documents folded in, unchanged ones dropped: what is left to write.
    fn prepare(
        &mut self,
        due: Vec<Due>,
        now: f64,
        identities: &Identities,
    ) -> Vec<(String, String, Footprint)> {
        let mut writes = Vec::new();
        for Due { uid, mut doc } in due {
            let Some(t) = self.pods.get_mut(&uid) else {
                continue;
            };
            match &t.earlier {
                Earlier::Unchecked => continue,
                Earlier::Found(earlier) if earlier.is_final => {
                    tracing::debug!(key = %t.key, "footprint already final in the store; kept");
                    self.forget(&uid, identities);
                    continue;
                }
                Earlier::Found(earlier) => carry_over(earlier, &mut doc),
                Earlier::Absent => {}
            }
            if !doc.is_final {
                if let Some(w) = t.written.as_mut().filter(|w| w.doc == content(&doc)) {
                    w.at = now;
                    continue;
                }
            }
            writes.push((uid, t.key.clone(), doc));
        }
        writes
    }

    fn wrote(&mut self, uid: &str, doc: Footprint, now: f64, identities: &Identities) {
        if doc.is_final {
            self.forget(uid, identities);
        } else if let Some(t) = self.pods.get_mut(uid) {
            t.written = Some(Written {
                doc: content(&doc),
                at: now,
            });
        }
    }

    fn forget(&mut self, uid: &str, identities: &Identities) {
        self.pods.remove(uid);
        self.finished.insert(uid.to_string());
        forget_identity(identities, uid);
    }
}

fn forget_identity(identities: &Identities, uid: &str) {
    if let Ok(mut all) = identities.write() {
        all.remove(uid);
    }
}

impl Tracked {
    fn new(id: &PodIdentity) -> Tracked {
        Tracked {
            id: Arc::new(id.clone()),
            tracker: AttemptTracker::new(AttemptIdentity {
                job: id.job.clone(),
                job_uid: id.job_uid.clone(),
                cronjob: id.cronjob.clone(),
                namespace: id.namespace.clone(),
                attempt: id.attempt,
                pod: id.pod.clone(),
                pod_uid: id.pod_uid.clone(),
                node: id.node.clone(),
            }),
            key: id.footprint_key(),
            in_api: false,
            earlier: Earlier::Unchecked,
            written: None,
            state_read: None,
        }
    }

    /// The pod object, or the news that the pod is gone: from the API once it has seen the pod,
    /// otherwise from its log folder. Returns the object, if any.
    fn observe(
        &mut self,
        env: &Env,
        now: f64,
        present: Option<&HashMap<String, PodDir>>,
    ) -> Option<Arc<k8s_openapi::api::core::v1::Pod>> {
        let uid = self.tracker.identity().pod_uid.clone();
        let pod = env.pods.as_ref().and_then(|pods| pods.pod(&uid));
        match &pod {
            Some(pod) => {
                self.in_api = true;
                self.tracker.observe_pod(pod, now);
            }
            None if self.in_api => self.tracker.mark_deleted(now),
            None if present.is_some_and(|p| !p.contains_key(&uid)) => {
                self.tracker.mark_deleted(now)
            }
            None => {}
        }
        pod
    }

    fn due(&self, now: f64, flush: bool, write_every: f64) -> bool {
        flush
            || self.tracker.is_final()
            || self
                .written
                .as_ref()
                .is_none_or(|w| now - w.at >= write_every)
    }

    /// The document as of `now`, with log-line times from the pod's state (which is read only
    /// here, at most once a write interval, and only when the shipper saved it since).
    fn document(&mut self, state: &StateDir, now: f64) -> Footprint {
        let uid = self.tracker.identity().pod_uid.clone();
        let version = state.version(&uid);
        if version.is_some() && version != self.state_read {
            let pod = state.load(&uid);
            if let Some((first, last)) = pod.as_ref().and_then(|p| p.log_span()) {
                self.tracker.observe_log_times(&first, &last);
            }
            self.state_read = version;
        }
        self.tracker.footprint(now)
    }
}

/// What a document says, without when it was built.
fn content(doc: &Footprint) -> Footprint {
    Footprint {
        updated: None,
        ..doc.clone()
    }
}

fn earlier_document(key: &str, data: Option<Bytes>) -> Earlier {
    let Some(data) = data else {
        return Earlier::Absent;
    };
    match serde_json::from_slice::<Footprint>(&data) {
        Ok(doc) => Earlier::Found(Box::new(doc)),
        Err(e) => {
            tracing::warn!(key, error = %e, "unreadable footprint in the store; replaced");
            Earlier::Absent
        }
    }
}

/// Folds a document of an earlier run of the agent into this run's: samples taken before ours,
/// peaks and cumulative counters (the larger wins), used memory (the two runs' sums; the gap
/// between them is not counted), and any field this run cannot know any more.
fn carry_over(earlier: &Footprint, doc: &mut Footprint) {
    let first_new = doc.samples.first().map_or(f64::INFINITY, |s| s.0);
    let mut samples: Vec<(f64, u64, f64)> = earlier
        .samples
        .iter()
        .filter(|s| s.0 < first_new)
        .copied()
        .collect();
    samples.append(&mut doc.samples);
    doc.samples = samples;
    if earlier.memory_peak_bytes > doc.memory_peak_bytes {
        doc.memory_peak_bytes = earlier.memory_peak_bytes;
        doc.memory_peak_source = earlier.memory_peak_source.clone();
    }
    doc.cpu_usage_seconds = larger(earlier.cpu_usage_seconds, doc.cpu_usage_seconds);
    doc.oom_kills = earlier.oom_kills.max(doc.oom_kills);
    doc.used_memory_byte_seconds = match (
        earlier.used_memory_byte_seconds,
        doc.used_memory_byte_seconds,
    ) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    fill_gaps(earlier, doc);
    for old in &earlier.containers {
        match doc.containers.iter_mut().find(|c| same_container(c, old)) {
            Some(c) => {
                c.memory_peak_bytes = c.memory_peak_bytes.max(old.memory_peak_bytes);
                c.cpu_usage_seconds = larger(c.cpu_usage_seconds, old.cpu_usage_seconds);
            }
            None => doc.containers.push(old.clone()),
        }
    }
}

/// Status and timing fields this run has no value for, taken from the earlier document.
fn fill_gaps(earlier: &Footprint, doc: &mut Footprint) {
    macro_rules! fill {
        ($($field:ident),*) => {$(
            if doc.$field.is_none() {
                doc.$field = earlier.$field.clone();
            }
        )*};
    }
    fill!(
        phase,
        reason,
        exit_code,
        created,
        scheduled,
        started,
        finished,
        deleted,
        memory_request_bytes,
        memory_limit_bytes,
        cpu_request_millicores,
        cpu_limit_millicores,
        reserved_memory_byte_seconds,
        waiting_seconds,
        waiting_reason,
        qos_class
    );
}

fn same_container(a: &ContainerFootprint, b: &ContainerFootprint) -> bool {
    (a.container_id.is_some() && a.container_id == b.container_id)
        || (a.name.is_some() && a.name == b.name)
}

fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    //! The recorder against the fake API server's scenarios (pod objects as a cluster serves
    //! them), a cgroup tree laid out as on a node, a log dir and a local store.

    use super::super::testutil::{pod_cgroup, unix, write_usage, Layout, GIB, MIB};
    use super::*;
    use crate::checkpoint::PodState;
    use crate::contract::ObjectEntry;
    use crate::follow::StreamCheckpoint;
    use crate::meta::{JobIdentity, MetadataSource, PodObjects};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::Value;
    use std::path::Path;
    use std::sync::Mutex;

    /// The pods of a scenario, servable and deletable.
    #[derive(Default)]
    struct Api {
        pods: Mutex<HashMap<String, Arc<Pod>>>,
        jobs: HashMap<String, JobIdentity>,
    }

    impl PodObjects for Api {
        fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
            self.pods.lock().unwrap().get(uid).cloned()
        }
    }

    impl MetadataSource for Api {
        fn lookup(&self, pod: &PodDir) -> Lookup {
            match self.jobs.get(&pod.uid) {
                Some(job) => Lookup::Known(job.clone()),
                None if self.pods.lock().unwrap().contains_key(&pod.uid) => Lookup::NotAJob,
                None => Lookup::Unknown,
            }
        }
    }

    impl Api {
        fn delete(&self, uid: &str) {
            self.pods.lock().unwrap().remove(uid);
        }
    }

    /// A scenario's pod objects and, from its `expected` list, what the API says of each.
    fn scenario(name: &str) -> (Vec<Pod>, Vec<PodIdentity>) {
        let path = format!(
            "{}/../tests/k8s_api/scenarios/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pods = doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["kind"] == "Pod")
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect();
        let ids = doc["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| PodIdentity {
                cluster: "default".into(),
                node: "node-1".into(),
                namespace: e["namespace"].as_str().unwrap().into(),
                pod: e["pod"].as_str().unwrap().into(),
                pod_uid: e["podUid"].as_str().unwrap().into(),
                job: e["job"].as_str().unwrap().into(),
                job_uid: e["jobUid"].as_str().map(String::from),
                cronjob: e["cronJob"].as_str().map(String::from),
                attempt: e["attempt"].as_u64().unwrap() as u32,
                completion_index: None,
            })
            .collect();
        (pods, ids)
    }

    /// A node running the recorder with the API on.
    struct Node {
        dir: tempfile::TempDir,
        api: Arc<Api>,
        identities: Identities,
        store: Arc<Store>,
        recorder: Recorder,
    }

    impl Node {
        /// `pinned`: the follower has pinned every pod (they logged); otherwise the recorder
        /// finds them through their folders and the API alone.
        async fn with_api(name: &str, pinned: bool) -> Node {
            let (pods, ids) = scenario(name);
            let api = Api {
                pods: Mutex::new(
                    pods.into_iter()
                        .map(|p| (p.metadata.uid.clone().unwrap(), Arc::new(p)))
                        .collect(),
                ),
                jobs: ids
                    .iter()
                    .map(|id| (id.pod_uid.clone(), job_of(id)))
                    .collect(),
            };
            let node = Node::new(Arc::new(api), true).await;
            for id in &ids {
                std::fs::create_dir_all(node.folder(id)).unwrap();
                if pinned {
                    node.pin(id);
                }
            }
            node
        }

        /// A node with a log dir, a cgroup tree and a local store; `with_api`: the recorder
        /// asks `api` for metadata and pod objects.
        async fn new(api: Arc<Api>, with_api: bool) -> Node {
            let dir = tempfile::tempdir().unwrap();
            let cfg = Config {
                log_dir: dir.path().join("pods"),
                state_dir: dir.path().join("state"),
                cgroup_root: dir.path().join("cgroup"),
                ..Config::default()
            };
            std::fs::create_dir_all(&cfg.log_dir).unwrap();
            std::fs::create_dir_all(&cfg.cgroup_root).unwrap();
            let store_dir = dir.path().join("store");
            let store = Arc::new(
                Store::open(store_dir.to_str().unwrap(), false, "")
                    .await
                    .unwrap(),
            );
            let identities = Identities::default();
            let deps = RecorderDeps {
                store: store.clone(),
                state: StateDir::open(&cfg.state_dir).unwrap(),
                identities: identities.clone(),
                metrics: Arc::new(Metrics::default()),
                metadata: with_api.then(|| api.clone() as Arc<dyn MetadataSource>),
                pods: with_api.then(|| api.clone() as Arc<dyn PodObjects>),
                records: None,
            };
            let recorder = Recorder::new(&cfg, "node-1", false, deps);
            Node {
                dir,
                api,
                identities,
                store,
                recorder,
            }
        }

        fn folder(&self, id: &PodIdentity) -> std::path::PathBuf {
            self.dir
                .path()
                .join("pods")
                .join(format!("{}_{}_{}", id.namespace, id.pod, id.pod_uid))
        }

        fn cgroup_root(&self) -> std::path::PathBuf {
            self.dir.path().join("cgroup")
        }

        fn pin(&self, id: &PodIdentity) {
            let mut all = self.identities.write().unwrap();
            all.insert(id.pod_uid.clone(), Arc::new(id.clone()));
        }

        async fn pass(&mut self, at: &str) -> usize {
            self.recorder.pass(unix(at), false).await.unwrap()
        }

        async fn footprint(&self, id: &PodIdentity) -> Footprint {
            let data = self.store.get(&id.footprint_key()).await.unwrap();
            serde_json::from_slice(&data.expect("footprint written")).unwrap()
        }
    }

    fn job_of(id: &PodIdentity) -> JobIdentity {
        JobIdentity {
            job: id.job.clone(),
            job_uid: id.job_uid.clone(),
            cronjob: id.cronjob.clone(),
            completion_index: None,
            attempt: Some(id.attempt),
        }
    }

    fn gib_seconds(doc: &Footprint) -> f64 {
        doc.reserved_memory_byte_seconds.unwrap() / GIB as f64
    }

    #[tokio::test]
    async fn invalid_secret_holds_its_request_while_waiting_until_deleted() {
        let mut node = Node::with_api("seed-invalid-secret", true).await;
        let id = scenario("seed-invalid-secret").1.remove(0);
        assert_eq!(node.pass("2026-11-27T15:10:00Z").await, 1);
        let doc = node.footprint(&id).await;
        assert_eq!(doc.memory_request_bytes, Some(GIB));
        assert_eq!(doc.cpu_request_millicores, None);
        assert_eq!(doc.phase.as_deref(), Some("Pending"));
        assert_eq!(doc.scheduled.as_deref(), Some("2026-11-27T15:05:00Z"));
        assert_eq!(gib_seconds(&doc), 300.0);
        assert_eq!(doc.waiting_seconds, Some(300.0));
        assert_eq!(
            doc.waiting_reason.as_deref(),
            Some("CreateContainerConfigError")
        );
        assert_eq!(doc.used_memory_byte_seconds, Some(0.0));
        assert_eq!(doc.job_uid, id.job_uid);
        assert!(!doc.is_final);

        // Rewritten at most once a write interval (60 s) while it lives.
        assert_eq!(node.pass("2026-11-27T15:10:30Z").await, 0);
        assert_eq!(node.pass("2026-11-27T15:11:00Z").await, 1);
        assert_eq!(gib_seconds(&node.footprint(&id).await), 360.0);

        node.api.delete(&id.pod_uid);
        assert_eq!(node.pass("2026-11-27T15:12:00Z").await, 1);
        let last = node.footprint(&id).await;
        assert!(last.is_final);
        assert_eq!(last.deleted.as_deref(), Some("2026-11-27T15:12:00Z"));
        assert_eq!(gib_seconds(&last), 420.0);
        assert_eq!(last.waiting_seconds, Some(420.0));
        // Forgotten: nothing more is written, and the shared map lets go of it.
        assert!(node.identities.read().unwrap().is_empty());
        assert_eq!(node.pass("2026-11-27T15:20:00Z").await, 0);
        assert_eq!(node.footprint(&id).await, last);
    }

    #[tokio::test]
    async fn a_pod_that_never_logged_is_found_through_the_api() {
        let mut node = Node::with_api("seed-invalid-secret", false).await;
        let id = scenario("seed-invalid-secret").1.remove(0);
        assert_eq!(node.pass("2026-11-27T15:06:00Z").await, 1);
        let doc = node.footprint(&id).await;
        assert_eq!((doc.job.as_str(), doc.attempt), ("invalid-secret", 1));
        assert_eq!(doc.job_uid, id.job_uid);
        assert_eq!(gib_seconds(&doc), 60.0);
    }

    #[tokio::test]
    async fn pods_of_no_job_are_not_recorded() {
        let (pods, ids) = scenario("seed-over-provisioned");
        let api = Arc::new(Api {
            pods: Mutex::new(
                pods.into_iter()
                    .map(|p| (p.metadata.uid.clone().unwrap(), Arc::new(p)))
                    .collect(),
            ),
            jobs: HashMap::new(),
        });
        let mut node = Node::new(api, true).await;
        std::fs::create_dir_all(node.folder(&ids[0])).unwrap();
        assert_eq!(node.pass("2026-11-27T15:10:00Z").await, 0);
        assert!(node.recorder.book.not_jobs.contains(&ids[0].pod_uid));
    }

    #[tokio::test]
    async fn exit_nonzero_attempts_are_final_in_one_pass() {
        let mut node = Node::with_api("seed-exit-nonzero", true).await;
        let ids = scenario("seed-exit-nonzero").1;
        // Only the last attempt's cgroup is still there (the kubelet removes those of ended pods).
        let last = &ids[5];
        let cid = "c7082ef8c862fba6468720bb7819c7c87b9522edf8d46246a7730e59e67f8464";
        let (pod_dir, ctr_dir) = pod_cgroup(
            &node.cgroup_root(),
            Layout::Systemd("burstable"),
            &last.pod_uid,
            cid,
        );
        write_usage(&pod_dir, 90_000, 1_600_000, Some(3 * MIB), 0);
        write_usage(&ctr_dir, 40_000, 1_500_000, Some(2 * MIB), 0);

        assert_eq!(node.pass("2026-11-27T15:05:00Z").await, 6);
        let mut docs = Vec::new();
        for id in &ids {
            let doc = node.footprint(id).await;
            assert!(doc.is_final, "attempt {}", id.attempt);
            assert_eq!(doc.attempt, id.attempt);
            assert_eq!(doc.phase.as_deref(), Some("Failed"));
            assert_eq!(
                (doc.exit_code, doc.reason.as_deref()),
                (Some(1), Some("Error"))
            );
            assert_eq!(doc.memory_request_bytes, Some(GIB));
            // From PodScheduled to finishedAt: 2 s to start, 30 s running.
            assert_eq!(gib_seconds(&doc), 32.0);
            assert_eq!(doc.waiting_seconds, Some(2.0));
            docs.push(doc);
        }
        let measured = &docs[5];
        assert_eq!(measured.memory_peak_bytes, Some(3 * MIB));
        assert_eq!(measured.memory_peak_source.as_deref(), Some("memory.peak"));
        assert_eq!(measured.cpu_usage_seconds, Some(1.6));
        assert_eq!(measured.containers[0].name.as_deref(), Some("exit-nonzero"));
        assert_eq!(measured.containers[0].memory_peak_bytes, Some(2 * MIB));
        // After the pod ended nothing goes into the memory-over-time series.
        assert!(measured.samples.is_empty());
        assert_eq!(node.pass("2026-11-27T15:06:00Z").await, 0);

        let report = super::super::build_report(docs, 20);
        assert_eq!(report.totals.failed, 6);
        assert_eq!(
            report.totals.reserved_memory_byte_seconds,
            Some(6.0 * 32.0 * GIB as f64)
        );
        assert_eq!(report.recommendation.memory_request_bytes, Some(64 * MIB));
        assert!(
            report
                .recommendation
                .memory_basis
                .contains("in attempt 6 (exit-nonzero-txl6b)"),
            "{}",
            report.recommendation.memory_basis
        );
    }

    #[tokio::test]
    async fn over_provisioned_is_sampled_while_it_runs() {
        let mut node = Node::with_api("seed-over-provisioned", true).await;
        let id = scenario("seed-over-provisioned").1.remove(0);
        let cid = "5806dd55e2d6b53099c3abdec7e7899e87e4572c4f5b83cc3a2254d5100183ba";
        let (pod_dir, ctr_dir) = pod_cgroup(
            &node.cgroup_root(),
            Layout::Cgroupfs("burstable"),
            &id.pod_uid,
            cid,
        );
        let memory = [GIB + 3 * MIB, GIB + 5 * MIB, GIB + 4 * MIB];
        for (i, bytes) in memory.iter().enumerate() {
            write_usage(&pod_dir, *bytes, 1_000_000 * (i as u64 + 1), None, 0);
            write_usage(&ctr_dir, *bytes - MIB, 900_000 * (i as u64 + 1), None, 0);
            node.pass(&format!("2026-11-27T15:10:{:02}Z", 5 * i)).await;
        }
        // The agent stopping: every changed document once more.
        node.recorder
            .pass(unix("2026-11-27T15:10:15Z"), true)
            .await
            .unwrap();
        let doc = node.footprint(&id).await;
        let series: Vec<u64> = doc.samples.iter().map(|s| s.1).collect();
        assert_eq!(series, [memory.to_vec(), vec![GIB + 4 * MIB]].concat());
        assert_eq!(doc.memory_peak_bytes, Some(GIB + 5 * MIB));
        assert_eq!(doc.memory_peak_source.as_deref(), Some("samples"));
        assert_eq!(doc.cpu_usage_seconds, Some(3.0));
        assert_eq!(doc.memory_request_bytes, Some(2 * GIB));
        assert_eq!(doc.phase.as_deref(), Some("Running"));
        assert_eq!(doc.started.as_deref(), Some("2026-11-27T15:06:03Z"));
        // Held from scheduling (15:06:00) to now: 255 s of 2 GiB.
        assert_eq!(gib_seconds(&doc), 510.0);
        assert!(!doc.is_final);
        let report = super::super::build_report(vec![doc], 20);
        assert_eq!(report.recommendation.memory_request_bytes, Some(1280 * MIB));
    }

    /// A node without the API, and a pod the follower pinned, whose state says when it logged.
    async fn without_api() -> (Node, PodIdentity) {
        let mut node = Node::new(Arc::new(Api::default()), false).await;
        let mut id = scenario("seed-exit-nonzero").1.remove(0);
        id.job_uid = None;
        std::fs::create_dir_all(node.folder(&id)).unwrap();
        node.pin(&id);
        let mut state = PodState::new(id.clone());
        let stream = state.stream_mut("exit-nonzero", 0);
        for (i, ts) in ["2026-11-27T14:53:41.5Z", "2026-11-27T14:54:11.25Z"]
            .iter()
            .enumerate()
        {
            let entry = ObjectEntry {
                key: String::new(),
                first_offset: i as u64,
                end_offset: i as u64 + 1,
                records: 1,
                bytes: 1,
                sha256: String::new(),
                first_ts: ts.to_string(),
                last_ts: ts.to_string(),
            };
            let cp = StreamCheckpoint {
                container: "exit-nonzero".into(),
                restart: 0,
                offset: i as u64 + 1,
                file: None,
            };
            stream.record(Some(entry), None, &cp, i == 1);
        }
        node.recorder.env.state.save(&state).unwrap();
        let cid = "788a2b834c94af0281c907166ada6fa397601aaa6a977932f63ae4cbefcb3dbf";
        let (pod_dir, _) = pod_cgroup(
            &node.cgroup_root(),
            Layout::Systemd("burstable"),
            &id.pod_uid,
            cid,
        );
        write_usage(&pod_dir, 400_000, 700_000, Some(500_000), 0);
        node.recorder.retries = 0;
        (node, id)
    }

    #[tokio::test]
    async fn without_the_api_times_come_from_the_logs_and_the_end_from_the_folder() {
        let (mut node, id) = without_api().await;
        assert_eq!(node.pass("2026-11-27T14:54:20Z").await, 1);
        let doc = node.footprint(&id).await;
        assert_eq!(doc.started.as_deref(), Some("2026-11-27T14:53:41.5Z"));
        assert_eq!(doc.finished.as_deref(), Some("2026-11-27T14:54:11.25Z"));
        assert_eq!(doc.memory_request_bytes, None);
        assert_eq!(doc.reserved_memory_byte_seconds, None);
        assert_eq!(doc.memory_peak_bytes, Some(500_000));
        assert_eq!(doc.samples.len(), 1);
        assert!(!doc.is_final);
        // The pod's cgroup is gone, so nothing changed: the stop-time pass writes nothing.
        std::fs::remove_dir_all(node.cgroup_root().join("kubepods.slice")).unwrap();
        assert_eq!(
            node.recorder
                .pass(unix("2026-11-27T14:54:25Z"), true)
                .await
                .unwrap(),
            0
        );

        std::fs::remove_dir_all(node.folder(&id)).unwrap();
        assert_eq!(node.pass("2026-11-27T14:55:00Z").await, 1);
        let last = node.footprint(&id).await;
        assert!(last.is_final);
        assert_eq!(last.deleted.as_deref(), Some("2026-11-27T14:55:00Z"));
        assert!(node.recorder.book.pods.is_empty());
        assert_eq!(node.pass("2026-11-27T14:56:00Z").await, 0);
        assert!(
            node.recorder.book.finished.is_empty(),
            "pruned with the folder"
        );
    }

    #[tokio::test]
    async fn a_final_document_of_an_earlier_run_is_kept() {
        let (mut node, id) = without_api().await;
        let earlier = Footprint {
            job: id.job.clone(),
            memory_peak_bytes: Some(123),
            is_final: true,
            ..Footprint::default()
        };
        put(&node.store, &id, &earlier).await;
        assert_eq!(node.pass("2026-11-27T15:00:00Z").await, 0);
        assert_eq!(node.footprint(&id).await, earlier);
        assert!(node.recorder.book.pods.is_empty());
    }

    #[tokio::test]
    async fn a_live_document_of_an_earlier_run_is_carried_over() {
        let (mut node, id) = without_api().await;
        let earlier = Footprint {
            job: id.job.clone(),
            samples: vec![(unix("2026-11-27T14:53:45Z"), 7 * MIB, 0.25)],
            memory_peak_bytes: Some(7 * MIB),
            memory_peak_source: Some("samples".into()),
            cpu_usage_seconds: Some(0.25),
            used_memory_byte_seconds: Some(1000.0),
            exit_code: Some(1),
            ..Footprint::default()
        };
        put(&node.store, &id, &earlier).await;
        assert_eq!(node.pass("2026-11-27T14:54:20Z").await, 1);
        let doc = node.footprint(&id).await;
        assert_eq!(
            doc.samples,
            [
                (unix("2026-11-27T14:53:45Z"), 7 * MIB, 0.25),
                (unix("2026-11-27T14:54:20Z"), 400_000, 0.7)
            ]
        );
        assert_eq!(doc.memory_peak_bytes, Some(7 * MIB));
        assert_eq!(doc.memory_peak_source.as_deref(), Some("samples"));
        // The counter of the same cgroup only grows: the larger reading wins.
        assert_eq!(doc.cpu_usage_seconds, Some(0.7));
        assert_eq!(doc.used_memory_byte_seconds, Some(1000.0));
        assert_eq!(doc.exit_code, Some(1));
        assert_eq!(doc.started.as_deref(), Some("2026-11-27T14:53:41.5Z"));
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_and_stays_due() {
        let (mut node, id) = without_api().await;
        // A file where the store needs a folder: every write of this key fails.
        let blocked = node.dir.path().join("store/footprints");
        std::fs::write(&blocked, b"").unwrap();
        let err = node
            .recorder
            .pass(unix("2026-11-27T14:54:20Z"), false)
            .await;
        assert!(err.is_err());
        std::fs::remove_file(&blocked).unwrap();
        assert_eq!(node.pass("2026-11-27T14:54:25Z").await, 1);
        assert_eq!(node.footprint(&id).await.samples.len(), 2);
    }

    async fn put(store: &Store, id: &PodIdentity, doc: &Footprint) {
        let body = Bytes::from(serde_json::to_vec(doc).unwrap());
        store
            .put(&id.footprint_key(), body, Content::Json)
            .await
            .unwrap();
    }

    #[test]
    fn scenario_files_are_where_the_tests_expect_them() {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/k8s_api/scenarios/seed-exit-nonzero.json")
            .is_file());
    }
}
