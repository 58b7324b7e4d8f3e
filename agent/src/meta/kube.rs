//! Pod metadata from the Kubernetes API (`--kube auto|on`): who a pod is (Job, Job uid, CronJob,
//! attempt, completion index) from its object, its controlling Job and the Job's other pods.
//!
//! A watch of this node's pods runs on the tokio runtime and fills a cache; Jobs and per-Job pod
//! lists are fetched on demand and cached (no watch of all Jobs). `lookup` is called from the
//! follower's thread and answers from the cache: what is missing is requested on the runtime,
//! and the lookup waits for it at most [`LOOKUP_WAIT`] while the API answers, otherwise returns
//! `Unknown` at once (the follower asks again). Tailing never waits for a slow API.
//!
//! The API access this needs (deploy/base/rbac.yaml): get, list, watch pods (cluster-wide,
//! listed by node field selector or by a Job's controller-uid label in one namespace), get jobs,
//! and list events (by involvedObject uid in one namespace, for the post-mortem records: `records`).

mod attempt;
mod cache;
mod fetch;
mod health;
mod podwatch;
mod records;

use crate::meta::{
    guess_job, JobIdentity, Lookup, MetadataSource, OnChange, PodDir, PodObjects, RunState,
};
use attempt::{attempt_among, completion_index, from_failure_count, Member};
use cache::{job_owner, Cache, JobFacts, Owner};
use health::Health;
use k8s_openapi::api::core::v1::Pod;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a lookup blocks the follower for a request it started.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);

/// Labels the Job controller puts on its pods, current form first (v1.27+), then legacy.
const CONTROLLER_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];

/// Where the API server is: the pod's service account when running in a cluster, otherwise
/// KUBECONFIG or ~/.kube/config. The error says what was looked for, on one line.
pub async fn cluster_config() -> Result<kube::Config, String> {
    if let Ok(config) = kube::Config::incluster() {
        return Ok(config);
    }
    kube::Config::infer().await.map_err(|e| {
        let why = e.to_string();
        format!(
            "no usable Kubernetes cluster configuration (in-cluster service account, KUBECONFIG or ~/.kube/config): {}",
            why.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    })
}

/// The Kubernetes API as a metadata source and as the pod objects of footprints.
#[derive(Clone)]
pub struct KubeSource {
    shared: Arc<Shared>,
}

impl KubeSource {
    /// Start watching the pods of `node`; must be called on the tokio runtime.
    pub fn start(mut config: kube::Config, node: &str) -> Result<KubeSource, String> {
        // kube-client's own retry layer retries 429/503 up to 15 times with delays growing to
        // minutes, logging each at ERROR: a down API would hide behind it. The watcher's backoff
        // and the lookups' retries (`cache::RETRY_AFTER`) do the retrying, visibly.
        config.default_retry = false;
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("cannot create a Kubernetes API client: {e}"))?;
        let (synced, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            client,
            runtime: tokio::runtime::Handle::current(),
            cache: Mutex::default(),
            changed: Condvar::new(),
            watch_health: Health::new("pod watch"),
            lookup_health: Health::new("job and pod lookups"),
            synced,
            listeners: Mutex::default(),
        });
        tokio::spawn(podwatch::run(shared.clone(), node.to_string()));
        Ok(KubeSource { shared })
    }

    /// Whether the first list of this node's pods has arrived (for readiness).
    pub fn synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Wait for the first list of this node's pods, at most `limit`; whether it came.
    pub async fn wait_synced(&self, limit: Duration) -> bool {
        let mut rx = self.shared.synced.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl MetadataSource for KubeSource {
    fn synced(&self) -> bool {
        KubeSource::synced(self)
    }

    /// Blocks on a condition variable: call it from a plain thread, not from the runtime.
    fn lookup(&self, dir: &PodDir) -> Lookup {
        let deadline = Instant::now() + LOOKUP_WAIT;
        let mut started = false;
        let mut cache = self.shared.cache();
        loop {
            if let Some(answer) = self.shared.answer(&mut cache, dir, &mut started) {
                return answer;
            }
            let now = Instant::now();
            if !started || now >= deadline || !self.shared.healthy() {
                return Lookup::Unknown;
            }
            cache = self
                .shared
                .changed
                .wait_timeout(cache, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn run_state(&self, pod_uid: &str, container: &str, restart: u32) -> RunState {
        match self.shared.cache().pod(pod_uid) {
            Some(pod) => run_state_of(&pod, container, restart),
            None => RunState::Unknown,
        }
    }

    fn on_change(&self, changed: OnChange) {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(changed);
    }
}

/// The kubelet names a container's log `{restartCount}.log`: run `restart` is over when a later
/// run exists, or when it is the current one and its state is terminated.
fn run_state_of(pod: &Pod, container: &str, restart: u32) -> RunState {
    let Some(status) = pod.status.as_ref() else {
        return RunState::Unknown;
    };
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let Some(c) = all.into_iter().find(|c| c.name == container) else {
        return RunState::Unknown;
    };
    let finished = |t: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>| {
        t.and_then(|t| t.finished_at.as_ref())
            .map(|at| at.0.as_second())
    };
    let current = u32::try_from(c.restart_count).unwrap_or(0);
    if restart < current {
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let finished_unix = if restart + 1 == current {
            finished(last)
        } else {
            None
        };
        return RunState::Ended { finished_unix };
    }
    if restart > current {
        return RunState::Unknown;
    }
    match c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
        Some(t) => RunState::Ended {
            finished_unix: finished(Some(t)),
        },
        None => RunState::Running,
    }
}

impl PodObjects for KubeSource {
    fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
        self.shared.cache().pod(uid)
    }
}

/// What the watch task, the request tasks and lookups share.
struct Shared {
    client: kube::Client,
    runtime: tokio::runtime::Handle,
    cache: Mutex<Cache>,
    /// Signalled on every cache change: lookups wait on it for their requests.
    changed: Condvar,
    watch_health: Health,
    lookup_health: Health,
    synced: tokio::sync::watch::Sender<bool>,
    /// Told of every pod the watch changes (`MetadataSource::on_change`).
    listeners: Mutex<Vec<OnChange>>,
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Cache)) {
        change(&mut self.cache());
        self.changed.notify_all();
    }

    /// Tell the listeners a pod changed (after the cache has the change).
    fn pod_changed(&self, uid: &str) {
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for changed in listeners.iter() {
            changed(uid);
        }
    }

    fn mark_synced(&self) {
        self.synced.send_replace(true);
        self.changed.notify_all();
    }

    fn healthy(&self) -> bool {
        !self.watch_health.failing() && !self.lookup_health.failing()
    }

    /// The answer if the cache has everything it needs; otherwise request what is missing
    /// (`started` tells whether this call did) and `None`.
    fn answer(self: &Arc<Self>, c: &mut Cache, dir: &PodDir, started: &mut bool) -> Option<Lookup> {
        let Some(pod) = c.pod(&dir.uid) else {
            return self.unseen(c, dir, started);
        };
        let Some(owner) = job_owner(&pod) else {
            return Some(Lookup::NotAJob);
        };
        let facts = self.job_facts(c, &dir.namespace, &owner, started);
        let attempt = self.attempt(c, &dir.namespace, &pod, &owner, started);
        Some(Lookup::Known(identity(&pod, owner, facts?, attempt?)))
    }

    /// A pod the watch has not shown: before the first list, wait for it; after, ask for it by
    /// name: if the API does not have it, its log path is all there is.
    fn unseen(self: &Arc<Self>, c: &mut Cache, dir: &PodDir, started: &mut bool) -> Option<Lookup> {
        if !*self.synced.borrow() {
            return None;
        }
        let get = c.pod_get(&dir.uid, Instant::now());
        if get.gone || get.fetch.given_up() {
            return Some(Lookup::Known(JobIdentity::from_path(dir)));
        }
        if get.fetch.due(Instant::now()) {
            get.fetch = cache::Fetch::Pending;
            *started = true;
            fetch::pod(self, dir);
        }
        None
    }

    /// A Job the API refuses to show is treated as gone: its name and uid still come from the
    /// pod's ownerReference.
    fn job_facts(
        self: &Arc<Self>,
        c: &mut Cache,
        namespace: &str,
        owner: &Owner,
        started: &mut bool,
    ) -> Option<JobFacts> {
        let now = Instant::now();
        let entry = c.job(&owner.uid, now);
        if let Some(facts) = &entry.facts {
            return Some(facts.clone());
        }
        if entry.fetch.given_up() {
            return Some(JobFacts::default());
        }
        if entry.fetch.due(now) {
            entry.fetch = cache::Fetch::Pending;
            *started = true;
            fetch::job(self, namespace, owner);
        }
        None
    }

    /// CONTRACT §4; the Job's pods are listed once the pod is not covered by an earlier list.
    /// Without a list (no controller-uid label, or the API refuses) the pods this node has seen
    /// are all there is to count.
    fn attempt(
        self: &Arc<Self>,
        c: &mut Cache,
        namespace: &str,
        pod: &Pod,
        owner: &Owner,
        started: &mut bool,
    ) -> Option<u32> {
        if let Some(attempt) = from_failure_count(&pod.metadata) {
            return Some(attempt);
        }
        let me = Member::of(pod)?;
        let now = Instant::now();
        let jp = c.job_pods_of(&owner.uid, now);
        jp.members
            .entry(me.uid.clone())
            .or_insert_with(|| me.clone());
        let selector = controller_selector(pod, &owner.uid);
        if jp.covered.contains(&me.uid) || jp.fetch.given_up() || selector.is_none() {
            return Some(attempt_among(&me, jp.members.values()));
        }
        if jp.fetch.due(now) {
            jp.fetch = cache::Fetch::Pending;
            *started = true;
            let snapshot = jp.members.keys().cloned().collect();
            fetch::job_pods(self, namespace, &owner.uid, selector?, snapshot);
        }
        None
    }
}

fn controller_selector(pod: &Pod, job_uid: &str) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    CONTROLLER_UID_LABELS
        .iter()
        .find(|k| labels.get(**k).is_some_and(|v| v == job_uid))
        .map(|k| format!("{k}={job_uid}"))
}

fn identity(pod: &Pod, owner: Owner, facts: JobFacts, attempt: u32) -> JobIdentity {
    let cronjob = if facts.exists {
        facts.cronjob
    } else {
        guessed_cronjob(pod, &owner.name)
    };
    JobIdentity {
        job: owner.name,
        job_uid: Some(owner.uid),
        cronjob,
        completion_index: completion_index(&pod.metadata),
        attempt: Some(attempt),
    }
}

/// With its Job gone, a pod's CronJob is only a guess from the names (`<cronjob>-<minutes>`),
/// made when the path rule reads the same Job name out of the pod name.
fn guessed_cronjob(pod: &Pod, job: &str) -> Option<String> {
    let guess = guess_job(pod.metadata.name.as_deref()?);
    guess.cronjob.filter(|_| guess.job == job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    }

    #[test]
    fn pods_are_listed_by_the_controller_uid_label_they_carry() {
        let current = pod(
            "a",
            &[
                ("batch.kubernetes.io/controller-uid", "u1"),
                ("controller-uid", "u1"),
            ],
        );
        assert_eq!(
            controller_selector(&current, "u1").as_deref(),
            Some("batch.kubernetes.io/controller-uid=u1")
        );
        let legacy = pod("a", &[("controller-uid", "u1")]);
        assert_eq!(
            controller_selector(&legacy, "u1").as_deref(),
            Some("controller-uid=u1")
        );
        assert_eq!(controller_selector(&legacy, "other"), None);
    }

    #[test]
    fn a_gone_job_keeps_its_name_and_uid_and_guesses_its_cronjob() {
        let owner = Owner {
            name: "cron-fail-29929854".into(),
            uid: "j".into(),
        };
        let id = identity(
            &pod("cron-fail-29929854-4mr6g", &[]),
            owner.clone(),
            JobFacts::default(),
            1,
        );
        assert_eq!(
            (
                id.job.as_str(),
                id.job_uid.as_deref(),
                id.cronjob.as_deref()
            ),
            ("cron-fail-29929854", Some("j"), Some("cron-fail"))
        );
        // The API's answer wins over the names.
        let found = JobFacts {
            exists: true,
            cronjob: None,
            seen: None,
        };
        assert_eq!(
            identity(&pod("cron-fail-29929854-4mr6g", &[]), owner, found, 1).cronjob,
            None
        );
        // A pod name that does not carry the Job's name gives no guess.
        let other = Owner {
            name: "report-29929854".into(),
            uid: "j".into(),
        };
        assert_eq!(
            identity(
                &pod("cron-fail-29929854-4mr6g", &[]),
                other,
                JobFacts::default(),
                1
            )
            .cronjob,
            None
        );
    }
}
