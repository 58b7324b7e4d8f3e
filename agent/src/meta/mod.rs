//! The enrich stage: who a pod is (job, job_uid, cronjob, attempt, completion index).
//!
//! `path` guesses from folder and pod names alone; `kube` asks the Kubernetes API, plugged in
//! through `MetadataSource`. Attempts without the API are numbered by the first log line of each
//! pod of a job seen on this node (`AttemptBook`).

pub mod kube;
pub mod path;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use path::{guess_job, JobGuess, PodDir};

use crate::contract::PodIdentity;

/// What a metadata source says about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobIdentity {
    pub job: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    pub completion_index: Option<u32>,
    /// Known exactly from the API; `None`: number it from first log lines.
    pub attempt: Option<u32>,
}

impl JobIdentity {
    /// The pod's identity as pinned for all its records, manifest and footprint.
    pub fn pin(self, cluster: &str, node: &str, dir: &PodDir, attempt: u32) -> PodIdentity {
        PodIdentity {
            cluster: cluster.to_string(),
            node: node.to_string(),
            namespace: dir.namespace.clone(),
            pod: dir.pod.clone(),
            pod_uid: dir.uid.clone(),
            job: self.job,
            job_uid: self.job_uid,
            cronjob: self.cronjob,
            attempt,
            completion_index: self.completion_index,
        }
    }

    pub fn from_path(dir: &PodDir) -> JobIdentity {
        let g = guess_job(&dir.pod);
        JobIdentity {
            job: g.job,
            job_uid: None,
            cronjob: g.cronjob,
            completion_index: g.completion_index,
            attempt: None,
        }
    }
}

/// What a metadata source (the Kubernetes API) says about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Owned by a Job: its identity (with the attempt when the source can tell).
    Known(JobIdentity),
    /// Known, and not owned by a Job (a bare pod, a Deployment's pod...).
    NotAJob,
    /// Not known (yet): the watch may not have seen it, or the API is unreachable.
    Unknown,
}

/// Whether one run of a container (its `restart`-th, the one writing `restart.log`) is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// Terminated, at this time (unix seconds) when the API says.
    Ended {
        finished_unix: Option<i64>,
    },
    /// The source does not know (no such pod or container in its view).
    Unknown,
}

/// Told the uid of a pod the source learned something new about.
pub type OnChange = Arc<dyn Fn(&str) + Send + Sync>;

/// A source of pod metadata beside the log path. The follower asks it once per new pod and pins
/// the answer; a pod the source does not know waits a bounded time, then ships with path-only
/// metadata.
pub trait MetadataSource: Send + Sync {
    fn lookup(&self, pod: &PodDir) -> Lookup;
    /// The source has its initial view (for /readyz).
    fn synced(&self) -> bool {
        true
    }
    /// Whether a container's run is over: its log is then complete once read to the end,
    /// while its folder still exists (CONTRACT §3). Without a source, only the folder's
    /// deletion says so.
    fn run_state(&self, _pod_uid: &str, _container: &str, _restart: u32) -> RunState {
        RunState::Unknown
    }
    /// Call `changed` with a pod's uid whenever its object changes, so the follower looks at
    /// that pod's streams at once instead of polling every one of them.
    fn on_change(&self, _changed: OnChange) {}
}

/// (namespace, job, completion index)
type JobKey = (String, String, Option<u32>);

/// Pod objects from the Kubernetes API, for footprints (requests, limits, status timeline).
pub trait PodObjects: Send + Sync {
    fn pod(&self, uid: &str) -> Option<Arc<k8s_openapi::api::core::v1::Pod>>;
}

/// The pods the follower has given an identity (pinned metadata), by pod uid: what footprints
/// are written for. The footprint recorder removes a pod once its final footprint is written.
pub type Identities = Arc<RwLock<HashMap<String, Arc<PodIdentity>>>>;

/// Path-only attempt numbers: 1 + the number of pods of the same job (and completion index)
/// seen on this node whose first log line is older. Pods are entered with their first line's
/// time; a pod's number is fixed the first time it is asked for (and then pinned in its state).
#[derive(Default)]
pub struct AttemptBook {
    pods: HashMap<JobKey, Vec<(i128, String)>>,
    /// Pods that left the node, and when.
    gone: HashMap<String, std::time::Instant>,
}

impl AttemptBook {
    pub fn enter(
        &mut self,
        namespace: &str,
        job: &JobIdentity,
        pod_uid: &str,
        first_line_nanos: i128,
    ) {
        let list = self
            .pods
            .entry((namespace.to_string(), job.job.clone(), job.completion_index))
            .or_default();
        if !list.iter().any(|(_, uid)| uid == pod_uid) {
            list.push((first_line_nanos, pod_uid.to_string()));
        }
    }

    /// The pod left the node. Its job keeps its numbers a while: a retry may still come.
    pub fn forget(&mut self, pod_uid: &str) {
        self.gone
            .entry(pod_uid.to_string())
            .or_insert_with(std::time::Instant::now);
    }

    /// Drop the jobs all of whose pods left the node more than `after` ago.
    pub fn prune(&mut self, after: std::time::Duration) {
        let gone = &self.gone;
        let old = |uid: &String| gone.get(uid).is_some_and(|t| t.elapsed() >= after);
        self.pods
            .retain(|_, list| !list.iter().all(|(_, uid)| old(uid)));
        let listed: std::collections::HashSet<&String> =
            self.pods.values().flatten().map(|(_, uid)| uid).collect();
        self.gone.retain(|uid, _| listed.contains(uid));
    }

    pub fn attempt(&self, namespace: &str, job: &JobIdentity, pod_uid: &str) -> u32 {
        let Some(list) =
            self.pods
                .get(&(namespace.to_string(), job.job.clone(), job.completion_index))
        else {
            return 1;
        };
        let Some(&(mine, _)) = list.iter().find(|(_, uid)| uid == pod_uid) else {
            return 1;
        };
        1 + list
            .iter()
            .filter(|(t, uid)| *t < mine || (*t == mine && uid.as_str() < pod_uid))
            .count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_follow_first_log_lines_not_discovery_order() {
        let dir = |pod: &str| PodDir {
            namespace: "default".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
        };
        let mut book = AttemptBook::default();
        let times = [
            ("exit-nonzero-ccccc", "2026-11-27T14:55:00.5Z"),
            ("exit-nonzero-zzzzz", "2026-11-27T14:53:39.12345Z"),
            ("exit-nonzero-bbbbb", "2026-11-27T14:54:00Z"),
        ];
        for (pod, ts) in times {
            let d = dir(pod);
            book.enter(
                &d.namespace,
                &JobIdentity::from_path(&d),
                &d.uid,
                crate::clock::rfc3339_nanos(ts).unwrap(),
            );
        }
        let attempt = |pod: &str| {
            let d = dir(pod);
            book.attempt(&d.namespace, &JobIdentity::from_path(&d), &d.uid)
        };
        assert_eq!(
            [
                attempt("exit-nonzero-zzzzz"),
                attempt("exit-nonzero-bbbbb"),
                attempt("exit-nonzero-ccccc")
            ],
            [1, 2, 3]
        );
    }
}
