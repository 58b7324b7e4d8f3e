//! What the Kubernetes source knows, as plain data under one lock: this node's pods from the
//! watch (deleted ones kept for a while), Jobs fetched on demand, and per Job the pods that
//! number its attempts. The tasks that fill it are in `podwatch` and `fetch`.
//!
//! Retention: the follower pins a pod's identity at its first lookup, so a deleted pod's object
//! only has to outlive the gap between its deletion and the first look at its log files; it is
//! kept [`DELETED_POD_RETENTION`]. Job entries and per-Job pod lists are dropped after
//! [`IDLE_RETENTION`] without use, and beyond [`MAX_JOBS`] the least recently used go first.
//! Pods of a Job deleted from the API stay in its list as long as the list is kept, so the
//! attempt numbers of later pods do not shift when earlier ones are garbage-collected.

use super::attempt::Member;
use k8s_openapi::api::core::v1::Pod;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DELETED_POD_RETENTION: Duration = Duration::from_secs(3600);
pub const IDLE_RETENTION: Duration = Duration::from_secs(3600);
pub const MAX_JOBS: usize = 4096;
/// A request that failed for a reason that may pass is tried again after this.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Progress of one on-demand request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fetch {
    #[default]
    Idle,
    Pending,
    Failed {
        at: Instant,
        permanent: bool,
    },
}

impl Fetch {
    /// Whether a request may start now.
    pub fn due(&self, now: Instant) -> bool {
        match *self {
            Fetch::Idle => true,
            Fetch::Pending => false,
            Fetch::Failed { at, permanent } => !permanent && now.duration_since(at) >= RETRY_AFTER,
        }
    }

    /// The API refused for good: make do without the answer.
    pub fn given_up(&self) -> bool {
        matches!(
            self,
            Fetch::Failed {
                permanent: true,
                ..
            }
        )
    }

    fn settle<T>(result: &Result<T, bool>, now: Instant) -> Fetch {
        match result {
            Ok(_) => Fetch::Idle,
            Err(permanent) => Fetch::Failed {
                at: now,
                permanent: *permanent,
            },
        }
    }
}

/// The controlling Job of a pod, from its ownerReferences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

pub fn job_owner(pod: &Pod) -> Option<Owner> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| {
            r.kind == "Job" && r.controller == Some(true) && r.api_version.starts_with("batch/")
        })
        .map(|r| Owner {
            name: r.name.clone(),
            uid: r.uid.clone(),
        })
}

/// A Job, as far as a pod's identity needs it. `exists: false`: not in the API (deleted, e.g.
/// by a CronJob's history limit) or not readable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFacts {
    pub exists: bool,
    pub cronjob: Option<String>,
    /// What it asked for, kept for its post-mortem record in case it is deleted before it ends.
    pub seen: Option<Arc<JobSeen>>,
}

/// The part of a Job that does not change while it runs (a few hundred bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSeen {
    pub spec: crate::postmortem::JobSpecSummary,
    pub created: Option<String>,
}

pub struct SeenPod {
    pub pod: Arc<Pod>,
    pub deleted: Option<Instant>,
}

pub struct JobEntry {
    pub facts: Option<JobFacts>,
    pub fetch: Fetch,
    used: Instant,
}

pub struct JobPods {
    pub members: HashMap<String, Member>,
    /// Pods a finished list accounts for: it started after they existed, so every pod of the
    /// Job created before them is in `members` (or was already gone from the API).
    pub covered: HashSet<String>,
    pub fetch: Fetch,
    used: Instant,
}

/// A pod the watch has not shown, asked for by name.
pub struct PodGet {
    /// Not in the API (or another pod by that name): its log path is all there is.
    pub gone: bool,
    pub fetch: Fetch,
    at: Instant,
}

#[derive(Default)]
pub struct Cache {
    pub pods: HashMap<String, SeenPod>,
    /// By Job uid.
    jobs: HashMap<String, JobEntry>,
    /// By Job uid.
    job_pods: HashMap<String, JobPods>,
    /// By pod uid.
    pod_gets: HashMap<String, PodGet>,
    /// Pods listed since the watch started over (`None` outside a relist).
    relisted: Option<HashSet<String>>,
}

impl Cache {
    pub fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
        self.pods.get(uid).map(|s| s.pod.clone())
    }

    /// A pod added or changed (watch, relist, or a GET).
    pub fn apply(&mut self, mut pod: Pod, now: Instant) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        // Only the API server's bookkeeping; the largest part of a pod object.
        pod.metadata.managed_fields = None;
        if let Some(seen) = &mut self.relisted {
            seen.insert(uid.clone());
        }
        self.add_member(&pod, now);
        self.pods.insert(
            uid,
            SeenPod {
                pod: Arc::new(pod),
                deleted: None,
            },
        );
    }

    pub fn delete(&mut self, pod: Pod, now: Instant) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.apply(pod, now);
        if let Some(seen) = self.pods.get_mut(&uid) {
            seen.deleted = Some(now);
        }
    }

    pub fn relist_started(&mut self) {
        self.relisted = Some(HashSet::new());
    }

    /// After a relist (a 410 or a reconnect), pods it did not return were deleted meanwhile.
    pub fn relist_done(&mut self, now: Instant) {
        let Some(listed) = self.relisted.take() else {
            return;
        };
        for (uid, seen) in &mut self.pods {
            if seen.deleted.is_none() && !listed.contains(uid) {
                seen.deleted = Some(now);
            }
        }
    }

    fn add_member(&mut self, pod: &Pod, now: Instant) {
        if let (Some(owner), Some(member)) = (job_owner(pod), Member::of(pod)) {
            self.job_pods_of(&owner.uid, now)
                .members
                .entry(member.uid.clone())
                .or_insert(member);
        }
    }

    /// What a Job looked like when it was fetched for its pods' identity, if still cached.
    pub fn job_seen(&self, uid: &str) -> Option<Arc<JobSeen>> {
        self.jobs.get(uid)?.facts.as_ref()?.seen.clone()
    }

    pub fn job(&mut self, uid: &str, now: Instant) -> &mut JobEntry {
        let entry = self
            .jobs
            .entry(uid.to_string())
            .or_insert_with(|| JobEntry {
                facts: None,
                fetch: Fetch::Idle,
                used: now,
            });
        entry.used = now;
        entry
    }

    pub fn job_pods_of(&mut self, job_uid: &str, now: Instant) -> &mut JobPods {
        let entry = self
            .job_pods
            .entry(job_uid.to_string())
            .or_insert_with(|| JobPods {
                members: HashMap::new(),
                covered: HashSet::new(),
                fetch: Fetch::Idle,
                used: now,
            });
        entry.used = now;
        entry
    }

    pub fn pod_get(&mut self, uid: &str, now: Instant) -> &mut PodGet {
        self.pod_gets.entry(uid.to_string()).or_insert(PodGet {
            gone: false,
            fetch: Fetch::Idle,
            at: now,
        })
    }

    pub fn job_fetched(&mut self, uid: &str, result: Result<JobFacts, bool>, now: Instant) {
        let entry = self.job(uid, now);
        entry.fetch = Fetch::settle(&result, now);
        if let Ok(facts) = result {
            entry.facts = Some(facts);
        }
    }

    /// `snapshot`: the members known when the list started.
    pub fn pods_listed(
        &mut self,
        job_uid: &str,
        snapshot: Vec<String>,
        result: Result<Vec<Member>, bool>,
        now: Instant,
    ) {
        let entry = self.job_pods_of(job_uid, now);
        entry.fetch = Fetch::settle(&result, now);
        if let Ok(listed) = result {
            entry.covered.extend(snapshot);
            for m in listed {
                entry.covered.insert(m.uid.clone());
                entry.members.entry(m.uid.clone()).or_insert(m);
            }
        }
    }

    /// `Ok(Some(pod))` only when it is the pod asked for (same uid).
    pub fn pod_got(&mut self, uid: &str, result: Result<Option<Pod>, bool>, now: Instant) {
        let entry = self.pod_get(uid, now);
        entry.fetch = Fetch::settle(&result, now);
        entry.at = now;
        match result {
            Ok(Some(pod)) => self.apply(pod, now),
            Ok(None) => self.pod_get(uid, now).gone = true,
            Err(_) => {}
        }
    }

    pub fn prune(&mut self, now: Instant) {
        let expired = |t: Instant, keep: Duration| now.duration_since(t) > keep;
        self.pods
            .retain(|_, s| !s.deleted.is_some_and(|t| expired(t, DELETED_POD_RETENTION)));
        self.pod_gets.retain(|_, g| !expired(g.at, IDLE_RETENTION));
        self.jobs.retain(|_, j| !expired(j.used, IDLE_RETENTION));
        self.job_pods
            .retain(|_, j| !expired(j.used, IDLE_RETENTION));
        keep_most_recent(&mut self.jobs, |j| j.used);
        keep_most_recent(&mut self.job_pods, |j| j.used);
    }
}

fn keep_most_recent<V>(map: &mut HashMap<String, V>, used: impl Fn(&V) -> Instant) {
    if map.len() <= MAX_JOBS {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&used).collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    let cutoff = times[MAX_JOBS - 1];
    map.retain(|_, v| used(v) >= cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod(name: &str, job_uid: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "job".into(),
            uid: job_uid.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn only_a_controlling_job_owns_a_pod() {
        let mut p = pod("a", "j1");
        assert_eq!(job_owner(&p).map(|o| o.uid), Some("j1".into()));
        p.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(job_owner(&p), None);
        assert_eq!(job_owner(&Pod::default()), None);
    }

    #[test]
    fn deleted_pods_stay_members_and_expire_from_the_pod_map() {
        let now = Instant::now();
        let mut c = Cache::default();
        c.apply(pod("a", "j1"), now);
        c.delete(pod("a", "j1"), now);
        assert!(c.pod("uid-a").is_some(), "kept after deletion");
        c.prune(now + DELETED_POD_RETENTION + Duration::from_secs(1));
        assert!(c.pod("uid-a").is_none(), "dropped after the retention");

        let mut c = Cache::default();
        c.apply(pod("a", "j1"), now);
        c.delete(pod("a", "j1"), now);
        c.apply(pod("b", "j1"), now);
        let members = &c.job_pods_of("j1", now).members;
        assert_eq!(members.len(), 2, "a deleted pod still counts for attempts");
    }

    #[test]
    fn a_relist_marks_missing_pods_deleted() {
        let now = Instant::now();
        let mut c = Cache::default();
        c.apply(pod("a", "j1"), now);
        c.apply(pod("b", "j1"), now);
        c.relist_started();
        c.apply(pod("b", "j1"), now);
        c.relist_done(now);
        assert!(c.pods["uid-a"].deleted.is_some());
        assert!(c.pods["uid-b"].deleted.is_none());
    }

    #[test]
    fn a_list_covers_the_pods_known_when_it_started() {
        let now = Instant::now();
        let mut c = Cache::default();
        c.apply(pod("mine", "j1"), now);
        let other = Member::of(&pod("elsewhere", "j1")).unwrap();
        c.pods_listed("j1", vec!["uid-mine".into()], Ok(vec![other]), now);
        let jp = c.job_pods_of("j1", now);
        assert!(jp.covered.contains("uid-mine") && jp.covered.contains("uid-elsewhere"));
        assert_eq!(jp.fetch, Fetch::Idle);
        c.pods_listed("j1", vec![], Err(false), now);
        assert!(
            !c.job_pods_of("j1", now).fetch.due(now),
            "retried only later"
        );
        assert!(c.job_pods_of("j1", now).fetch.due(now + RETRY_AFTER));
    }

    #[test]
    fn least_recently_used_jobs_go_first() {
        let start = Instant::now();
        let mut c = Cache::default();
        for i in 0..MAX_JOBS + 10 {
            c.job(&format!("j{i}"), start + Duration::from_millis(i as u64));
        }
        c.prune(start + Duration::from_secs(1));
        assert_eq!(c.jobs.len(), MAX_JOBS);
        assert!(!c.jobs.contains_key("j0") && c.jobs.contains_key(&format!("j{}", MAX_JOBS + 9)));
    }
}
