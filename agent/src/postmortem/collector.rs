//! The collector: when to ask the cluster for an attempt's Events and a Job's final state, and
//! what to write. The footprint recorder calls [`Collector::pass`] after each of its passes with
//! what it observed of every Job pod on the node; the collector keeps its own book, so an
//! attempt's last Events are still written when the recorder has already let the pod go.
//!
//! API load, per pod: one list of its Events (`fieldSelector=involvedObject.uid=<pod uid>` in
//! its namespace) when it is first seen, at most one more per [`LIST_INTERVAL_SECS`] when its
//! state changed (phase, a container's state, reason or restart count, deletion), at most
//! [`MAX_LIVE_LISTS`] while it lives, and one when it has ended: 2 to 4 for a typical Job pod,
//! never more than `MAX_LIVE_LISTS + 1` (plus retries of failed requests). Per Job and node:
//! when a pod of it ends and no other pod of it still runs on the node, GETs of the Job at
//! [`JOB_CHECKS_SECS`] after that until it has a final condition (usually the first or second),
//! then one list of the Job's Events.
//!
//! Store requests: an attempt's Events are one object, rewritten only when the set of Events
//! changed (a new Event, a higher count), and read once per run of the agent before its first
//! write (to keep Events an earlier run saw that have expired since). A Job's record is read,
//! merged and written only when the merge changed it: a second node writing the same Job finds
//! identical bytes and does not write.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::record::{final_condition, job_record_key, EventRecord, EventSet, JobRecord, JobRef};
use super::{ClusterRecords, JobLookup, RecordsError};
use crate::contract::{PodIdentity, UNKNOWN_UID};
use crate::metrics::Metrics;
use crate::store::{Content, Store, StoreError};

/// A pod's Events are listed again after a change of state at most this often.
pub const LIST_INTERVAL_SECS: f64 = 60.0;
/// Lists while the pod lives (the first included); the list once it has ended comes on top.
pub const MAX_LIVE_LISTS: u32 = 10;
/// When a Job is read after a pod of it ended, counted from that end: the Job controller sets
/// the final condition moments after the last pod fails or succeeds.
pub const JOB_CHECKS_SECS: [f64; 4] = [0.0, 10.0, 60.0, 300.0];
/// A failed request or write is tried again after this.
const RETRY_SECS: f64 = 30.0;
/// A live attempt the recorder stopped reporting (it let the pod go without seeing its end) is
/// forgotten after this.
const FORGET_AFTER_SECS: f64 = 3600.0;
/// Failed tries after which an ended attempt's Events or a Job's record are given up.
const MAX_TRIES: u32 = 10;
const GZIP_LEVEL: u32 = 6;

/// What the recorder saw of one Job pod in a pass.
pub struct Observation {
    pub id: Arc<PodIdentity>,
    /// The pod's state as [`pod_state`] renders it; None without a pod object.
    pub state: Option<String>,
    /// The attempt has ended (terminated, or gone from the API) and its last sample was taken.
    pub ended: bool,
}

/// The parts of a pod's state whose change brings new Events: phase, deletion, and per
/// container its state, reason and restart count. Compared, never parsed.
pub fn pod_state(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let mut out = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into());
    if pod.metadata.deletion_timestamp.is_some() {
        out.push_str(" deleting");
    }
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .map(|c| c.status.as_str());
    out.push_str(&format!(" scheduled={}", scheduled.unwrap_or("?")));
    let containers = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(container_state);
    for c in containers {
        out.push(' ');
        out.push_str(&c);
    }
    out
}

fn container_state(s: &ContainerStatus) -> String {
    let state = s.state.as_ref();
    let (kind, reason) = match state {
        Some(st) if st.terminated.is_some() => (
            "terminated",
            st.terminated.as_ref().and_then(|t| t.reason.clone()),
        ),
        Some(st) if st.running.is_some() => ("running", None),
        Some(st) if st.waiting.is_some() => (
            "waiting",
            st.waiting.as_ref().and_then(|w| w.reason.clone()),
        ),
        _ => ("unknown", None),
    };
    format!(
        "{}={kind}/{}/{}",
        s.name,
        reason.unwrap_or_default(),
        s.restart_count
    )
}

struct PodEvents {
    id: Arc<PodIdentity>,
    key: String,
    /// When the recorder last reported it.
    seen_at: f64,
    state: Option<String>,
    /// The state at the last list (`None`: never listed).
    listed: Option<Option<String>>,
    last_list: f64,
    live_lists: u32,
    ended: bool,
    final_listed: bool,
    /// The API refused for good, or the tries ran out: write what there is and stop listing.
    given_up: bool,
    tries: u32,
    retry_at: f64,
    events: EventSet,
    /// The store's object was read (or found absent) this run.
    earlier_checked: bool,
    /// Events not in the store yet.
    unwritten: bool,
}

impl PodEvents {
    fn new(id: Arc<PodIdentity>) -> PodEvents {
        PodEvents {
            key: events_key(&id),
            id,
            seen_at: f64::NEG_INFINITY,
            state: None,
            listed: None,
            last_list: f64::NEG_INFINITY,
            live_lists: 0,
            ended: false,
            final_listed: false,
            given_up: false,
            tries: 0,
            retry_at: f64::NEG_INFINITY,
            events: EventSet::default(),
            earlier_checked: false,
            unwritten: false,
        }
    }

    fn list_due(&self, now: f64) -> bool {
        if self.given_up || now < self.retry_at {
            return false;
        }
        if self.ended {
            return !self.final_listed;
        }
        let changed = self.listed.as_ref() != Some(&self.state);
        changed && self.live_lists < MAX_LIVE_LISTS && now - self.last_list >= LIST_INTERVAL_SECS
            || self.listed.is_none()
    }

    fn done(&self, now: f64) -> bool {
        let finished = self.ended && (self.final_listed || self.given_up) && !self.unwritten;
        let abandoned = !self.ended && now - self.seen_at > FORGET_AFTER_SECS;
        finished || abandoned
    }
}

struct JobCheck {
    job: JobRef,
    /// The end of the pod that armed the checks.
    armed_at: f64,
    step: usize,
    next_at: f64,
    tries: u32,
}

pub struct Collector {
    source: Arc<dyn ClusterRecords>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    concurrency: usize,
    /// Tries per write beyond the first (the recorder's: some in a drain, none while running).
    retries: u32,
    pods: HashMap<String, PodEvents>,
    /// By Job uid.
    jobs: HashMap<String, JobCheck>,
    /// Whether the last API request failed: logged when this changes, not on every request.
    api_failing: bool,
}

impl Collector {
    pub fn new(
        source: Arc<dyn ClusterRecords>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        concurrency: usize,
        retries: u32,
    ) -> Collector {
        Collector {
            source,
            store,
            metrics,
            concurrency: concurrency.max(1),
            retries,
            pods: HashMap::new(),
            jobs: HashMap::new(),
            api_failing: false,
        }
    }

    /// One pass at `now`: take the observations, list the Events that are due, write what
    /// changed, read the Jobs that are due and write their records. A store failure is returned
    /// after everything else was done; what it concerned is tried again in the next pass.
    pub async fn pass(&mut self, seen: Vec<Observation>, now: f64) -> Result<(), StoreError> {
        self.observe(seen, now);
        self.list_events(now).await;
        let mut failure = self.write_events().await.err();
        if let Err(e) = self.check_jobs(now).await {
            failure = Some(e);
        }
        self.pods.retain(|_, p| !p.done(now));
        failure.map_or(Ok(()), Err)
    }

    /// Attempts and Jobs still followed (for tests and the demo).
    pub fn pending(&self) -> (usize, usize) {
        (self.pods.len(), self.jobs.len())
    }

    /// Takes every observation first, then arms the Job checks of the attempts that just ended:
    /// a Job can only have ended once none of its pods runs on this node any more.
    fn observe(&mut self, seen: Vec<Observation>, now: f64) {
        let mut ended = Vec::new();
        for o in seen {
            // Without a Job uid (path-only metadata) there is nothing to ask the API about.
            if o.id.job_uid.as_deref().is_none_or(|u| u == UNKNOWN_UID) {
                continue;
            }
            let entry = self
                .pods
                .entry(o.id.pod_uid.clone())
                .or_insert_with(|| PodEvents::new(o.id.clone()));
            entry.seen_at = now;
            if o.state.is_some() {
                entry.state = o.state;
            }
            if o.ended && !entry.ended {
                entry.ended = true;
                ended.push(o.id);
            }
        }
        for id in ended {
            let job_uid = id.job_uid.clone().unwrap_or_default();
            let others_live = self
                .pods
                .values()
                .any(|p| !p.ended && p.id.job_uid.as_deref() == Some(job_uid.as_str()));
            if others_live {
                continue;
            }
            let job = JobRef {
                cluster: id.cluster.clone(),
                namespace: id.namespace.clone(),
                job: id.job.clone(),
                job_uid: job_uid.clone(),
                cronjob: id.cronjob.clone(),
            };
            self.jobs.insert(
                job_uid,
                JobCheck {
                    job,
                    armed_at: now,
                    step: 0,
                    next_at: now,
                    tries: 0,
                },
            );
        }
    }

    async fn list_events(&mut self, now: f64) {
        let due: Vec<(String, String)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.list_due(now))
            .map(|(uid, p)| (uid.clone(), p.id.namespace.clone()))
            .collect();
        let source = &self.source;
        let results: Vec<(String, Result<Vec<EventRecord>, RecordsError>)> = stream::iter(due)
            .map(|(uid, ns)| async move {
                let listed = source.events(&ns, &uid).await;
                (uid, listed.map(|all| records_of(&all)))
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (uid, result) in results {
            self.metrics.postmortem_requests.fetch_add(1, Relaxed);
            let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
            self.api_outcome(&outcome, "Events of a pod");
            let Some(p) = self.pods.get_mut(&uid) else {
                continue;
            };
            match result {
                Ok(events) => {
                    p.unwritten |= p.events.extend(events);
                    p.listed = Some(p.state.clone());
                    p.last_list = now;
                    p.tries = 0;
                    if p.ended {
                        p.final_listed = true;
                    } else {
                        p.live_lists += 1;
                    }
                }
                Err(e) => {
                    p.tries += 1;
                    p.retry_at = now + RETRY_SECS;
                    if e.permanent || (p.ended && p.tries >= MAX_TRIES) {
                        p.given_up = true;
                    }
                }
            }
        }
    }

    /// Writes the Events objects whose set changed.
    async fn write_events(&mut self) -> Result<(), StoreError> {
        let due: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| p.unwritten)
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut failure = None;
        for uid in due {
            let Some(p) = self.pods.get_mut(&uid) else {
                continue;
            };
            match write_pod_events(&self.store, p, self.retries).await {
                Ok(true) => {
                    self.metrics.events_written.fetch_add(1, Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    self.metrics.postmortem_errors.fetch_add(1, Relaxed);
                    p.tries += 1;
                    if p.ended && p.tries >= MAX_TRIES {
                        tracing::warn!(key = %p.key, error = %e, "giving up writing the Events of an attempt");
                        p.unwritten = false;
                    }
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    async fn check_jobs(&mut self, now: f64) -> Result<(), StoreError> {
        let due: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, c)| c.next_at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        let mut failure = None;
        for uid in due {
            let Some(check) = self.jobs.get(&uid) else {
                continue;
            };
            let job = check.job.clone();
            match self.check_job(&job).await {
                Ok(Checked::Final) => {
                    self.jobs.remove(&uid);
                }
                Ok(Checked::NotFinal) => self.advance(&uid, now, false),
                Err(Failure::Api(e)) => self.advance(&uid, now, e.permanent),
                Err(Failure::Store(e)) => {
                    self.metrics.postmortem_errors.fetch_add(1, Relaxed);
                    self.advance(&uid, now, false);
                    failure = Some(e);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The next check of a Job that has not ended (or could not be read), or none.
    fn advance(&mut self, uid: &str, now: f64, give_up: bool) {
        let Some(check) = self.jobs.get_mut(uid) else {
            return;
        };
        check.tries += 1;
        let next = JOB_CHECKS_SECS.get(check.step + 1);
        match next {
            Some(delay) if !give_up && check.tries < MAX_TRIES => {
                check.step += 1;
                check.next_at = (check.armed_at + delay).max(now + 1.0);
            }
            _ => {
                self.jobs.remove(uid);
            }
        }
    }

    async fn check_job(&mut self, job: &JobRef) -> Result<Checked, Failure> {
        self.metrics.postmortem_requests.fetch_add(1, Relaxed);
        let found = self
            .source
            .job(&job.namespace, &job.job, &job.job_uid)
            .await;
        self.api_outcome(&found.as_ref().map(|_| ()).map_err(Clone::clone), "a Job");
        let record = match found.map_err(Failure::Api)? {
            JobLookup::Found(object) => {
                if final_condition(&object).is_none() {
                    return Ok(Checked::NotFinal);
                }
                JobRecord::from_job(job, &object, self.job_events(job).await?)
            }
            JobLookup::Gone { spec, created } => {
                JobRecord::gone(job, spec, created, self.job_events(job).await?)
            }
        };
        if write_job_record(&self.store, record, self.retries)
            .await
            .map_err(Failure::Store)?
        {
            self.metrics.job_records_written.fetch_add(1, Relaxed);
        }
        Ok(Checked::Final)
    }

    /// The Job's own Events; a refusal leaves the record without them rather than without a
    /// record.
    async fn job_events(&mut self, job: &JobRef) -> Result<Vec<EventRecord>, Failure> {
        self.metrics.postmortem_requests.fetch_add(1, Relaxed);
        let listed = self.source.events(&job.namespace, &job.job_uid).await;
        self.api_outcome(
            &listed.as_ref().map(|_| ()).map_err(Clone::clone),
            "Events of a Job",
        );
        match listed {
            Ok(all) => Ok(records_of(&all)),
            Err(e) if e.permanent => Ok(Vec::new()),
            Err(e) => Err(Failure::Api(e)),
        }
    }

    fn api_outcome(&mut self, outcome: &Result<(), RecordsError>, what: &str) {
        match outcome {
            Ok(()) if self.api_failing => {
                self.api_failing = false;
                tracing::info!("Events and Jobs are read from the Kubernetes API again");
            }
            Ok(()) => {}
            Err(e) => {
                self.metrics.postmortem_errors.fetch_add(1, Relaxed);
                if !self.api_failing {
                    self.api_failing = true;
                    tracing::warn!(error = %e.message, reading = what, "cannot read Events or Jobs from the Kubernetes API; post-mortem records wait (a refusal: written without them)");
                }
            }
        }
    }
}

enum Checked {
    Final,
    NotFinal,
}

enum Failure {
    Api(RecordsError),
    Store(StoreError),
}

fn records_of(events: &[k8s_openapi::api::core::v1::Event]) -> Vec<EventRecord> {
    events.iter().filter_map(EventRecord::of).collect()
}

/// `events/cluster=…/namespace=…/job=…/job_uid=…/attempt=…/pod=….ndjson.gz`
pub fn events_key(id: &PodIdentity) -> String {
    let doc = id.footprint_key();
    let partition = doc
        .strip_prefix("footprints/")
        .and_then(|k| k.strip_suffix(".json"))
        .unwrap_or(&doc);
    format!("events/{partition}.ndjson.gz")
}

/// Writes the attempt's Events if they differ from what the store holds; whether it wrote.
async fn write_pod_events(
    store: &Store,
    p: &mut PodEvents,
    retries: u32,
) -> Result<bool, StoreError> {
    let mut stored = None;
    if !p.earlier_checked {
        if let Some(gz) = store.get(&p.key).await? {
            let mut body = Vec::new();
            match crate::inflate::gunzip(&gz, &mut body) {
                Ok(()) => {
                    let earlier = EventSet::from_ndjson(&body);
                    p.events.extend(earlier.sorted());
                    stored = Some(body);
                }
                Err(e) => {
                    tracing::warn!(key = %p.key, error = %e, "unreadable Events object in the store; replaced");
                }
            }
        }
        p.earlier_checked = true;
    }
    let body = p.events.to_ndjson();
    if p.events.is_empty() || stored.as_deref() == Some(body.as_slice()) {
        p.unwritten = false;
        return Ok(false);
    }
    let gz = crate::compress::gzip(&body, GZIP_LEVEL);
    store
        .put_with_retries(
            &p.key,
            Bytes::from(gz),
            Content::GzipNdjsonDocument,
            retries,
        )
        .await?;
    tracing::debug!(key = %p.key, events = p.events.len(), "Events of an attempt written");
    p.unwritten = false;
    Ok(true)
}

/// Merges `record` with the one in the store and writes the result if it differs; whether it
/// wrote.
async fn write_job_record(
    store: &Store,
    record: JobRecord,
    retries: u32,
) -> Result<bool, StoreError> {
    let key = job_record_key(
        &record.cluster,
        &record.namespace,
        &record.job,
        &record.job_uid,
    );
    let stored = store.get(&key).await?;
    let merged = match stored.as_deref().map(serde_json::from_slice::<JobRecord>) {
        Some(Ok(earlier)) => record.merge(earlier),
        Some(Err(e)) => {
            tracing::warn!(key = %key, error = %e, "unreadable Job record in the store; replaced");
            record
        }
        None => record,
    };
    let body = serde_json::to_vec(&merged).expect("a Job record serializes");
    if stored.as_deref() == Some(body.as_slice()) {
        return Ok(false);
    }
    store
        .put_with_retries(&key, Bytes::from(body), Content::Json, retries)
        .await?;
    tracing::debug!(key = %key, source = %merged.source, "Job record written");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postmortem::record::JobSpecSummary;
    use futures::future::BoxFuture;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Event;
    use serde_json::json;
    use std::sync::Mutex;

    /// A cluster as plain data: Events and Jobs by uid, changed by the tests, and every request
    /// counted.
    #[derive(Default)]
    struct Cluster {
        events: Mutex<Vec<Event>>,
        jobs: Mutex<HashMap<String, Job>>,
        refuse: Mutex<Option<bool>>,
        requests: Mutex<Vec<String>>,
    }

    impl ClusterRecords for Cluster {
        fn events(
            &self,
            namespace: &str,
            uid: &str,
        ) -> BoxFuture<'static, Result<Vec<Event>, RecordsError>> {
            self.requests.lock().unwrap().push(format!("events {uid}"));
            let answer = match *self.refuse.lock().unwrap() {
                Some(permanent) => Err(RecordsError {
                    message: "refused".into(),
                    permanent,
                }),
                None => Ok(self
                    .events
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| {
                        e.involved_object.uid.as_deref() == Some(uid)
                            && e.metadata.namespace.as_deref() == Some(namespace)
                    })
                    .cloned()
                    .collect()),
            };
            Box::pin(async move { answer })
        }

        fn job(
            &self,
            _namespace: &str,
            _name: &str,
            uid: &str,
        ) -> BoxFuture<'static, Result<JobLookup, RecordsError>> {
            self.requests.lock().unwrap().push(format!("job {uid}"));
            let answer = match self.jobs.lock().unwrap().get(uid) {
                Some(j) => JobLookup::Found(Box::new(j.clone())),
                None => JobLookup::Gone {
                    spec: Some(JobSpecSummary {
                        backoff_limit: Some(6),
                        ..JobSpecSummary::default()
                    }),
                    created: None,
                },
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    impl Cluster {
        fn event(&self, uid: &str, object: &str, reason: &str, count: i32, at: &str) {
            let e = json!({
                "metadata": {"name": format!("{object}.{uid}"), "namespace": "default", "uid": uid},
                "involvedObject": {"kind": if object.starts_with("job") {"Job"} else {"Pod"},
                                   "namespace": "default", "name": object, "uid": object},
                "reason": reason, "message": format!("{reason} x{count}"),
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2026-11-27T14:00:00Z", "lastTimestamp": at,
                "count": count, "type": "Normal"
            });
            let e: Event = serde_json::from_value(e).unwrap();
            let mut all = self.events.lock().unwrap();
            all.retain(|x| x.metadata.uid.as_deref() != Some(uid));
            all.push(e);
        }

        fn expire(&self, uid: &str) {
            self.events
                .lock()
                .unwrap()
                .retain(|x| x.metadata.uid.as_deref() != Some(uid));
        }

        fn set_job(&self, uid: &str, condition: Option<&str>) {
            let mut status = json!({"failed": 2, "startTime": "2026-11-27T14:00:00Z"});
            if let Some(reason) = condition {
                status["conditions"] = json!([{"type": "Failed", "status": "True",
                    "reason": reason, "message": "m",
                    "lastTransitionTime": "2026-11-27T14:05:00Z"}]);
            }
            let j: Job = serde_json::from_value(json!({
                "metadata": {"name": "job", "namespace": "default", "uid": uid},
                "spec": {"backoffLimit": 1, "template": {"spec": {"containers": [
                    {"name": "main", "image": "busybox",
                     "resources": {"requests": {"memory": "1Gi"}}}]}}},
                "status": status
            }))
            .unwrap();
            self.jobs.lock().unwrap().insert(uid.into(), j);
        }

        fn requests(&self) -> Vec<String> {
            std::mem::take(&mut self.requests.lock().unwrap())
        }
    }

    fn identity(pod: &str, job_uid: Option<&str>) -> Arc<PodIdentity> {
        Arc::new(PodIdentity {
            cluster: "default".into(),
            node: "node-1".into(),
            namespace: "default".into(),
            pod: pod.into(),
            pod_uid: pod.into(),
            job: "job".into(),
            job_uid: job_uid.map(String::from),
            cronjob: None,
            attempt: 1,
            completion_index: None,
        })
    }

    fn seen(id: &Arc<PodIdentity>, state: &str, ended: bool) -> Observation {
        Observation {
            id: id.clone(),
            state: Some(state.into()),
            ended,
        }
    }

    struct Setup {
        _dir: tempfile::TempDir,
        store: Arc<Store>,
        cluster: Arc<Cluster>,
        collector: Collector,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(dir.path().to_str().unwrap(), false, "")
                .await
                .unwrap(),
        );
        let cluster = Arc::new(Cluster::default());
        let collector = Collector::new(
            cluster.clone(),
            store.clone(),
            Arc::new(Metrics::default()),
            4,
            0,
        );
        Setup {
            _dir: dir,
            store,
            cluster,
            collector,
        }
    }

    async fn stored_events(store: &Store, id: &PodIdentity) -> Vec<(String, u32)> {
        let Some(gz) = store.get(&events_key(id)).await.unwrap() else {
            return Vec::new();
        };
        let mut body = Vec::new();
        crate::inflate::gunzip(&gz, &mut body).unwrap();
        EventSet::from_ndjson(&body)
            .sorted()
            .into_iter()
            .map(|e| (e.reason.unwrap(), e.count))
            .collect()
    }

    #[test]
    fn events_key_sits_beside_the_footprint() {
        let id = identity("job-abcde", Some("ju"));
        assert_eq!(
            events_key(&id),
            "events/cluster=default/namespace=default/job=job/job_uid=ju/attempt=1/pod=job-abcde.ndjson.gz"
        );
    }

    #[tokio::test]
    async fn events_are_listed_at_changes_of_state_and_kept_after_they_expire() {
        let mut s = setup().await;
        let pod = identity("pod-a", Some("job-1"));
        s.cluster
            .event("e1", "pod-a", "Scheduled", 1, "2026-11-27T14:00:00Z");
        s.collector
            .pass(vec![seen(&pod, "Pending", false)], 0.0)
            .await
            .unwrap();
        assert_eq!(s.cluster.requests(), ["events pod-a"]);
        assert_eq!(
            stored_events(&s.store, &pod).await,
            [("Scheduled".into(), 1)]
        );

        // Same state: no request. A new state within the interval waits for it.
        s.collector
            .pass(vec![seen(&pod, "Pending", false)], 10.0)
            .await
            .unwrap();
        s.collector
            .pass(vec![seen(&pod, "Running", false)], 20.0)
            .await
            .unwrap();
        assert!(s.cluster.requests().is_empty());
        s.cluster
            .event("e2", "pod-a", "Started", 1, "2026-11-27T14:00:30Z");
        s.collector
            .pass(vec![seen(&pod, "Running", false)], 60.0)
            .await
            .unwrap();
        assert_eq!(s.cluster.requests(), ["events pod-a"]);

        // The first Event expires from the API; the archive keeps it. The end: a last list.
        s.cluster.expire("e1");
        s.cluster
            .event("e2", "pod-a", "Started", 2, "2026-11-27T14:01:30Z");
        s.collector
            .pass(vec![seen(&pod, "Failed", true)], 70.0)
            .await
            .unwrap();
        let requests = s.cluster.requests();
        assert_eq!(requests[0], "events pod-a");
        assert_eq!(
            stored_events(&s.store, &pod).await,
            [("Scheduled".into(), 1), ("Started".into(), 2)]
        );
        assert_eq!(s.collector.pending().0, 0, "the attempt is done");
    }

    #[tokio::test]
    async fn a_restarted_agent_keeps_what_the_store_holds() {
        let mut s = setup().await;
        let pod = identity("pod-a", Some("job-1"));
        s.cluster
            .event("e1", "pod-a", "Scheduled", 1, "2026-11-27T14:00:00Z");
        s.collector
            .pass(vec![seen(&pod, "Running", false)], 0.0)
            .await
            .unwrap();
        s.cluster.expire("e1");
        s.cluster
            .event("e2", "pod-a", "Killing", 1, "2026-11-27T15:30:00Z");
        let mut again = Collector::new(
            s.cluster.clone(),
            s.store.clone(),
            Arc::new(Metrics::default()),
            4,
            0,
        );
        again
            .pass(vec![seen(&pod, "Failed", true)], 0.0)
            .await
            .unwrap();
        assert_eq!(
            stored_events(&s.store, &pod).await,
            [("Scheduled".into(), 1), ("Killing".into(), 1)]
        );
    }

    #[tokio::test]
    async fn live_lists_are_bounded() {
        let mut s = setup().await;
        let pod = identity("pod-a", Some("job-1"));
        for i in 0..50 {
            let state = format!("Running restarts={i}");
            s.collector
                .pass(vec![seen(&pod, &state, false)], 60.0 * i as f64)
                .await
                .unwrap();
        }
        assert_eq!(s.cluster.requests().len(), MAX_LIVE_LISTS as usize);
        s.collector
            .pass(vec![seen(&pod, "Failed", true)], 4000.0)
            .await
            .unwrap();
        assert_eq!(
            s.cluster.requests(),
            ["events pod-a", "job job-1", "events job-1"]
        );
    }

    #[tokio::test]
    async fn an_attempt_no_longer_reported_is_forgotten() {
        let mut s = setup().await;
        let pod = identity("pod-a", Some("job-1"));
        s.collector
            .pass(vec![seen(&pod, "Running", false)], 0.0)
            .await
            .unwrap();
        s.collector.pass(vec![], 3600.0).await.unwrap();
        assert_eq!(s.collector.pending(), (1, 0));
        s.collector.pass(vec![], 3601.0).await.unwrap();
        assert_eq!(s.collector.pending(), (0, 0));
    }

    #[tokio::test]
    async fn pods_without_a_job_uid_are_not_asked_about() {
        let mut s = setup().await;
        let pod = identity("pod-a", None);
        s.collector
            .pass(vec![seen(&pod, "Failed", true)], 0.0)
            .await
            .unwrap();
        assert!(s.cluster.requests().is_empty());
    }

    #[tokio::test]
    async fn the_job_record_is_written_once_the_job_has_ended() {
        let mut s = setup().await;
        let (a, b) = (
            identity("pod-a", Some("job-1")),
            identity("pod-b", Some("job-1")),
        );
        s.cluster.set_job("job-1", None);
        s.cluster
            .event("j1", "job-1", "SuccessfulCreate", 1, "2026-11-27T14:00:00Z");
        // a ends while b runs: the Job is not read yet.
        s.collector
            .pass(
                vec![seen(&a, "Failed", true), seen(&b, "Running", false)],
                0.0,
            )
            .await
            .unwrap();
        assert!(!s.cluster.requests().iter().any(|r| r.starts_with("job")));
        // b ends; the Job controller has not set the condition yet: read again 10 s later.
        s.collector
            .pass(vec![seen(&b, "Failed", true)], 100.0)
            .await
            .unwrap();
        assert!(s.cluster.requests().contains(&"job job-1".to_string()));
        s.cluster.set_job("job-1", Some("BackoffLimitExceeded"));
        s.collector.pass(vec![], 105.0).await.unwrap();
        assert!(s.cluster.requests().is_empty(), "not due before 10 s");
        s.collector.pass(vec![], 110.0).await.unwrap();
        assert_eq!(s.cluster.requests(), ["job job-1", "events job-1"]);
        let key = job_record_key("default", "default", "job", "job-1");
        let r: JobRecord =
            serde_json::from_slice(&s.store.get(&key).await.unwrap().unwrap()).unwrap();
        assert_eq!(
            r.condition.unwrap().reason.as_deref(),
            Some("BackoffLimitExceeded")
        );
        assert_eq!(r.events.len(), 1);
        assert_eq!(s.collector.pending(), (0, 0));
    }

    #[tokio::test]
    async fn checks_of_a_job_that_runs_on_are_bounded() {
        let mut s = setup().await;
        let a = identity("pod-a", Some("job-1"));
        s.cluster.set_job("job-1", None);
        s.collector
            .pass(vec![seen(&a, "Failed", true)], 0.0)
            .await
            .unwrap();
        for t in 1..1000 {
            s.collector.pass(vec![], t as f64).await.unwrap();
        }
        let gets = s
            .cluster
            .requests()
            .iter()
            .filter(|r| r.starts_with("job"))
            .count();
        assert_eq!(gets, JOB_CHECKS_SECS.len());
        assert_eq!(s.collector.pending(), (0, 0));
    }

    #[tokio::test]
    async fn a_gone_job_is_recorded_from_its_events_and_what_was_seen() {
        let mut s = setup().await;
        let a = identity("pod-a", Some("job-2"));
        s.cluster.event(
            "j1",
            "job-2",
            "BackoffLimitExceeded",
            1,
            "2026-11-27T14:05:00Z",
        );
        s.collector
            .pass(vec![seen(&a, "Failed", true)], 0.0)
            .await
            .unwrap();
        let key = job_record_key("default", "default", "job", "job-2");
        let r: JobRecord =
            serde_json::from_slice(&s.store.get(&key).await.unwrap().unwrap()).unwrap();
        assert_eq!(r.source, "gone");
        assert_eq!(r.spec.unwrap().backoff_limit, Some(6));
        assert_eq!(r.condition.unwrap().from, "events");
        assert!(r.note.is_some());
    }

    #[tokio::test]
    async fn a_second_writer_of_the_same_record_writes_nothing() {
        let mut s = setup().await;
        s.cluster.set_job("job-1", Some("BackoffLimitExceeded"));
        s.collector
            .pass(
                vec![seen(&identity("pod-a", Some("job-1")), "Failed", true)],
                0.0,
            )
            .await
            .unwrap();
        let key = job_record_key("default", "default", "job", "job-1");
        let first = s.store.get(&key).await.unwrap().unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut other = Collector::new(s.cluster.clone(), s.store.clone(), metrics.clone(), 4, 0);
        let mut b = (*identity("pod-b", Some("job-1"))).clone();
        b.node = "node-2".into();
        other
            .pass(vec![seen(&Arc::new(b), "Failed", true)], 5.0)
            .await
            .unwrap();
        assert_eq!(s.store.get(&key).await.unwrap().unwrap(), first);
        assert_eq!(metrics.job_records_written.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_refusal_gives_up_without_retrying_forever() {
        let mut s = setup().await;
        let pod = identity("pod-a", Some("job-1"));
        *s.cluster.refuse.lock().unwrap() = Some(true);
        s.collector
            .pass(vec![seen(&pod, "Running", false)], 0.0)
            .await
            .unwrap();
        s.collector
            .pass(vec![seen(&pod, "Failed", false)], 100.0)
            .await
            .unwrap();
        assert_eq!(
            s.cluster.requests(),
            ["events pod-a"],
            "given up after a 403"
        );
        // A transient failure is retried.
        let other = identity("pod-b", Some("job-1"));
        *s.cluster.refuse.lock().unwrap() = Some(false);
        s.collector
            .pass(vec![seen(&other, "Running", false)], 200.0)
            .await
            .unwrap();
        *s.cluster.refuse.lock().unwrap() = None;
        s.collector
            .pass(vec![seen(&other, "Running", false)], 210.0)
            .await
            .unwrap();
        assert_eq!(s.cluster.requests(), ["events pod-b"]);
        s.collector
            .pass(vec![seen(&other, "Running", false)], 230.0)
            .await
            .unwrap();
        assert_eq!(s.cluster.requests(), ["events pod-b"]);
    }
}
