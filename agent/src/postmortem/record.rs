//! The post-mortem documents, defined once for the agent that writes them and `describe` that
//! reads them (CONTRACT §3, v1.1; layouts in docs/audit.md): an archived Event, and a Job's
//! record (spec summary, final condition, counts, its own Events).
//!
//! Both are built from API objects alone, never from the node or the time of writing: several
//! nodes may write the same Job record, and they must write the same bytes. Merging two versions
//! (what is in the store, what was just read from the API) is a union that does not depend on
//! the order: Events by uid (the most advanced occurrence wins), the Job's object over its
//! absence.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Event};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::footprint::Stamp;

/// One Kubernetes Event, flattened (core/v1 and events.k8s.io shapes alike).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventRecord {
    pub uid: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Occurrences folded into this Event by the API server's aggregation.
    pub count: u32,
    /// RFC 3339: the first and the latest occurrence.
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    /// Who reported it (`kubelet`, `default-scheduler`, `job-controller` ...) and from where.
    pub source: Option<String>,
    pub host: Option<String>,
    pub object_kind: Option<String>,
    pub object_name: Option<String>,
    pub object_uid: Option<String>,
    /// The container it concerns, as `spec.containers{name}`.
    pub field_path: Option<String>,
}

fn nonempty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

fn time_text(nanos: i128) -> Option<String> {
    Stamp::from_datetime(OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?).map(|s| s.text)
}

fn time(t: &Time) -> Option<String> {
    time_text(t.0.as_nanosecond())
}

fn micro_time(t: &MicroTime) -> Option<String> {
    time_text(t.0.as_nanosecond())
}

fn nanos(text: Option<&str>) -> i128 {
    text.and_then(crate::clock::rfc3339_nanos)
        .unwrap_or(i128::MIN)
}

impl EventRecord {
    /// The Event as archived; None for an object without a uid (nothing to deduplicate by).
    /// Events of the events.k8s.io API have `eventTime` and `series` instead of the first and
    /// last timestamps and the count of core/v1 ones.
    pub fn of(e: &Event) -> Option<EventRecord> {
        let uid = nonempty(e.metadata.uid.as_ref())?;
        let first = e
            .first_timestamp
            .as_ref()
            .and_then(time)
            .or_else(|| e.event_time.as_ref().and_then(micro_time))
            .or_else(|| e.metadata.creation_timestamp.as_ref().and_then(time));
        let series = e.series.as_ref();
        let last = series
            .and_then(|s| s.last_observed_time.as_ref())
            .and_then(micro_time)
            .or_else(|| e.last_timestamp.as_ref().and_then(time))
            .or_else(|| first.clone());
        let count = series
            .and_then(|s| s.count)
            .or(e.count)
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c > 0)
            .unwrap_or(1);
        let source = e.source.as_ref();
        let object = &e.involved_object;
        Some(EventRecord {
            uid,
            kind: nonempty(e.type_.as_ref()),
            reason: nonempty(e.reason.as_ref()),
            message: nonempty(e.message.as_ref()),
            count,
            first_timestamp: first,
            last_timestamp: last,
            source: nonempty(source.and_then(|s| s.component.as_ref()))
                .or_else(|| nonempty(e.reporting_component.as_ref())),
            host: nonempty(source.and_then(|s| s.host.as_ref()))
                .or_else(|| nonempty(e.reporting_instance.as_ref())),
            object_kind: nonempty(object.kind.as_ref()),
            object_name: nonempty(object.name.as_ref()),
            object_uid: nonempty(object.uid.as_ref()),
            field_path: nonempty(object.field_path.as_ref()),
        })
    }

    pub fn first_nanos(&self) -> i128 {
        nanos(self.first_timestamp.as_deref())
    }

    pub fn last_nanos(&self) -> i128 {
        nanos(self.last_timestamp.as_deref())
    }

    /// Of two versions of one Event, the one that saw more: a higher count, then a later last
    /// occurrence; on a tie the larger text, so that the choice does not depend on the order.
    fn supersedes(&self, other: &EventRecord) -> bool {
        let rank = |e: &EventRecord| (e.count, e.last_nanos());
        match rank(self).cmp(&rank(other)) {
            std::cmp::Ordering::Equal => {
                serde_json::to_string(self).ok() > serde_json::to_string(other).ok()
            }
            order => order.is_gt(),
        }
    }
}

/// A set of Events by uid, kept across lists: an Event that expired from the API stays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSet {
    by_uid: HashMap<String, EventRecord>,
}

impl EventSet {
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Adds or advances one Event; whether the set changed.
    pub fn add(&mut self, e: EventRecord) -> bool {
        match self.by_uid.get(&e.uid) {
            Some(old) if !e.supersedes(old) => false,
            _ => {
                self.by_uid.insert(e.uid.clone(), e);
                true
            }
        }
    }

    pub fn extend(&mut self, events: impl IntoIterator<Item = EventRecord>) -> bool {
        let mut changed = false;
        for e in events {
            changed |= self.add(e);
        }
        changed
    }

    /// In time order (first occurrence, then uid).
    pub fn sorted(&self) -> Vec<EventRecord> {
        let mut all: Vec<EventRecord> = self.by_uid.values().cloned().collect();
        sort_events(&mut all);
        all
    }

    /// One JSON line per Event, in time order: the body of an `events/` object before gzip.
    pub fn to_ndjson(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.sorted() {
            serde_json::to_writer(&mut out, &e).expect("an event serializes");
            out.push(b'\n');
        }
        out
    }

    /// The lines of an `events/` object; unreadable lines are skipped.
    pub fn from_ndjson(body: &[u8]) -> EventSet {
        let mut set = EventSet::default();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(e) = serde_json::from_slice::<EventRecord>(line) {
                set.add(e);
            }
        }
        set
    }
}

pub fn sort_events(events: &mut [EventRecord]) {
    events.sort_by(|a, b| {
        (a.first_nanos(), a.last_nanos(), &a.uid).cmp(&(b.first_nanos(), b.last_nanos(), &b.uid))
    });
}

/// What a Job asked for: the part of its spec that explains its runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSpecSummary {
    pub parallelism: Option<i32>,
    pub completions: Option<i32>,
    pub completion_mode: Option<String>,
    pub backoff_limit: Option<i32>,
    pub backoff_limit_per_index: Option<i32>,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: Option<i32>,
    pub suspend: Option<bool>,
    pub restart_policy: Option<String>,
    pub containers: Vec<ContainerSpecSummary>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpecSummary {
    pub name: String,
    pub image: Option<String>,
    /// An init container (a sidecar when `restart_policy` is `Always`).
    pub init: bool,
    pub restart_policy: Option<String>,
    /// Quantities as written in the spec (`1Gi`, `500m`), by resource name.
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

impl JobSpecSummary {
    pub fn of(job: &Job) -> JobSpecSummary {
        let Some(spec) = job.spec.as_ref() else {
            return JobSpecSummary::default();
        };
        let pod = spec.template.spec.as_ref();
        let init = pod
            .and_then(|p| p.init_containers.as_ref())
            .into_iter()
            .flatten()
            .map(|c| container_summary(c, true));
        let app = pod
            .into_iter()
            .flat_map(|p| &p.containers)
            .map(|c| container_summary(c, false));
        JobSpecSummary {
            parallelism: spec.parallelism,
            completions: spec.completions,
            completion_mode: spec.completion_mode.clone(),
            backoff_limit: spec.backoff_limit,
            backoff_limit_per_index: spec.backoff_limit_per_index,
            active_deadline_seconds: spec.active_deadline_seconds,
            ttl_seconds_after_finished: spec.ttl_seconds_after_finished,
            suspend: spec.suspend,
            restart_policy: pod.and_then(|p| p.restart_policy.clone()),
            containers: init.chain(app).collect(),
        }
    }
}

fn container_summary(c: &Container, init: bool) -> ContainerSpecSummary {
    let quantities = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        map.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    };
    let res = c.resources.as_ref();
    ContainerSpecSummary {
        name: c.name.clone(),
        image: c.image.clone(),
        init,
        restart_policy: c.restart_policy.clone(),
        requests: quantities(res.and_then(|r| r.requests.as_ref())),
        limits: quantities(res.and_then(|r| r.limits.as_ref())),
    }
}

/// The Job's status at its final condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobStatusSummary {
    pub start_time: Option<String>,
    pub completion_time: Option<String>,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub completed_indexes: Option<String>,
    pub failed_indexes: Option<String>,
    pub conditions: Vec<JobConditionRecord>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobConditionRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
}

/// How the Job ended: its `Complete` or `Failed` condition, or, with the Job gone, what its
/// own Events said (the Job controller reports the same reason as an Event).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinalCondition {
    /// `Complete` or `Failed`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub time: Option<String>,
    /// `status` (the Job's conditions) or `events` (the Job's Events, the object being gone).
    pub from: String,
}

/// Event reasons the Job controller gives when it fails a Job (`Warning`), and the one it gives
/// when the Job completes (`Normal`).
const FAILURE_REASONS: [&str; 5] = [
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "PodFailurePolicy",
    "FailedIndexes",
    "MaxFailedIndexesExceeded",
];
const COMPLETED_REASON: &str = "Completed";

/// `source` of a record built from the Job object at its final condition.
pub const FROM_API: &str = "api";
/// `source` of a record built after the Job left the API: its Events and what the agent had
/// seen of it before.
pub const FROM_GONE: &str = "gone";

/// A Job's record (`jobs/…/job_uid={uid}.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRecord {
    pub cluster: String,
    pub namespace: String,
    pub job: String,
    pub job_uid: String,
    pub cronjob: Option<String>,
    /// [`FROM_API`] or [`FROM_GONE`].
    pub source: String,
    /// What the record cannot say and why (null when it says everything).
    pub note: Option<String>,
    pub created: Option<String>,
    pub condition: Option<FinalCondition>,
    pub spec: Option<JobSpecSummary>,
    pub status: Option<JobStatusSummary>,
    pub events: Vec<EventRecord>,
}

/// Who the record is about, as the agent knows it from the pods' identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobRef {
    pub cluster: String,
    pub namespace: String,
    pub job: String,
    pub job_uid: String,
    pub cronjob: Option<String>,
}

impl JobRef {
    pub fn key(&self) -> String {
        job_record_key(&self.cluster, &self.namespace, &self.job, &self.job_uid)
    }
}

/// `jobs/cluster={c}/namespace={ns}/job={job}/job_uid={uid}.json`
pub fn job_record_key(cluster: &str, ns: &str, job: &str, uid: &str) -> String {
    format!(
        "{}job_uid={uid}.json",
        crate::contract::listing_prefix("jobs", cluster, ns, Some(job))
    )
}

/// The final condition of a Job object, if it has reached one.
pub fn final_condition(job: &Job) -> Option<FinalCondition> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| FinalCondition {
            kind: c.type_.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            time: c.last_transition_time.as_ref().and_then(time),
            from: "status".into(),
        })
}

fn status_summary(job: &Job) -> JobStatusSummary {
    let Some(st) = job.status.as_ref() else {
        return JobStatusSummary::default();
    };
    JobStatusSummary {
        start_time: st.start_time.as_ref().and_then(time),
        completion_time: st.completion_time.as_ref().and_then(time),
        active: st.active.unwrap_or(0),
        succeeded: st.succeeded.unwrap_or(0),
        failed: st.failed.unwrap_or(0),
        completed_indexes: st.completed_indexes.clone().filter(|s| !s.is_empty()),
        failed_indexes: st.failed_indexes.clone().filter(|s| !s.is_empty()),
        conditions: st
            .conditions
            .iter()
            .flatten()
            .map(|c| JobConditionRecord {
                kind: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.as_ref().and_then(time),
            })
            .collect(),
    }
}

/// When the Job was created (RFC 3339).
pub fn job_created(job: &Job) -> Option<String> {
    job.metadata.creation_timestamp.as_ref().and_then(time)
}

/// The CronJob that owns a Job, from its ownerReferences.
pub fn owning_cronjob(job: &Job) -> Option<String> {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == "CronJob" && r.api_version.starts_with("batch/"))
        .map(|r| r.name.clone())
}

impl JobRecord {
    /// From the Job object at its final condition and its Events.
    pub fn from_job(who: &JobRef, job: &Job, events: Vec<EventRecord>) -> JobRecord {
        let mut record = JobRecord {
            cluster: who.cluster.clone(),
            namespace: who.namespace.clone(),
            job: who.job.clone(),
            job_uid: who.job_uid.clone(),
            cronjob: owning_cronjob(job).or_else(|| who.cronjob.clone()),
            source: FROM_API.into(),
            note: None,
            created: job_created(job),
            condition: final_condition(job),
            spec: Some(JobSpecSummary::of(job)),
            status: Some(status_summary(job)),
            events,
        };
        record.settle();
        record
    }

    /// The Job is gone from the API: its Events (which outlive it up to the API server's
    /// event TTL) and what the agent saw of it earlier (`spec`, `created`), if anything.
    pub fn gone(
        who: &JobRef,
        spec: Option<JobSpecSummary>,
        created: Option<String>,
        events: Vec<EventRecord>,
    ) -> JobRecord {
        let mut record = JobRecord {
            cluster: who.cluster.clone(),
            namespace: who.namespace.clone(),
            job: who.job.clone(),
            job_uid: who.job_uid.clone(),
            cronjob: who.cronjob.clone(),
            source: FROM_GONE.into(),
            created,
            spec,
            events,
            ..JobRecord::default()
        };
        record.settle();
        record
    }

    /// Folds `other` (another node's, or an earlier run's record of the same Job) into this one.
    /// The result does not depend on which of the two is `self`.
    pub fn merge(self, other: JobRecord) -> JobRecord {
        let (mut base, extra) = if rank(&other) > rank(&self) {
            (other, self)
        } else {
            (self, other)
        };
        let mut events = EventSet::default();
        events.extend(base.events.drain(..));
        events.extend(extra.events.iter().cloned());
        base.events = events.sorted();
        if base.source == FROM_GONE {
            base.spec = base.spec.or(extra.spec);
            base.created = base.created.or(extra.created);
            base.cronjob = base.cronjob.or(extra.cronjob);
            base.condition = None;
        }
        base.settle();
        base
    }

    /// Events in order; with the Job gone, its final condition from its Events, and the note.
    fn settle(&mut self) {
        sort_events(&mut self.events);
        if self.source == FROM_GONE {
            self.condition = condition_from_events(&self.job_uid, &self.events);
        }
        self.note = self.explain();
    }

    fn explain(&self) -> Option<String> {
        if self.source == FROM_API {
            return None;
        }
        let unknown = if self.spec.is_none() {
            "its spec, status and counts are unknown"
        } else {
            "its status and counts are unknown"
        };
        let ending = match &self.condition {
            Some(c) => format!(
                "its final condition ({}) comes from its Events",
                c.reason.as_deref().unwrap_or(&c.kind)
            ),
            None => "none of its Events reports a final condition (deleted while it ran or waited, or its Events had expired)".into(),
        };
        Some(format!(
            "the Job had left the Kubernetes API when its last pod on the node ended: {ending}; {unknown}"
        ))
    }
}

/// Order of preference between two records of one Job: the object over its absence, then the
/// one that knows the spec, then the larger text (any fixed rule would do).
fn rank(r: &JobRecord) -> (bool, bool, String) {
    (
        r.source == FROM_API,
        r.spec.is_some(),
        serde_json::to_string(r).unwrap_or_default(),
    )
}

/// The Job controller's last verdict among the Job's own Events.
fn condition_from_events(job_uid: &str, events: &[EventRecord]) -> Option<FinalCondition> {
    events
        .iter()
        .filter(|e| e.object_kind.as_deref() == Some("Job"))
        .filter(|e| e.object_uid.as_deref().is_none_or(|u| u == job_uid))
        .filter_map(|e| {
            let reason = e.reason.as_deref()?;
            let kind = if FAILURE_REASONS.contains(&reason) {
                "Failed"
            } else if reason == COMPLETED_REASON {
                "Complete"
            } else {
                return None;
            };
            Some(FinalCondition {
                kind: kind.into(),
                reason: Some(reason.into()),
                message: e.message.clone(),
                time: e.first_timestamp.clone(),
                from: "events".into(),
            })
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/k8s/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The recorded EventList of a real kube-apiserver, as archived records.
    fn recorded_events() -> Vec<EventRecord> {
        let list = fixture("events-default.json");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| EventRecord::of(&serde_json::from_value(e.clone()).unwrap()).unwrap())
            .collect()
    }

    fn of_object(events: &[EventRecord], uid: &str) -> Vec<EventRecord> {
        events
            .iter()
            .filter(|e| e.object_uid.as_deref() == Some(uid))
            .cloned()
            .collect()
    }

    fn job(name: &str) -> Job {
        serde_json::from_value(fixture(&format!("job-{name}.json"))).unwrap()
    }

    fn who(job: &str, uid: &str) -> JobRef {
        JobRef {
            cluster: "default".into(),
            namespace: "default".into(),
            job: job.into(),
            job_uid: uid.into(),
            cronjob: None,
        }
    }

    const CRON_FAIL_54: &str = "e4042944-47ff-4b49-8851-90c2592c1ba8";
    const CRON_FAIL_55: &str = "e85a3318-9f6c-4691-b4e1-c62d7c90042f";

    #[test]
    fn recorded_events_flatten_with_their_object_and_source() {
        let events = recorded_events();
        assert_eq!(events.len(), 19);
        let e = &of_object(&events, CRON_FAIL_54)[1];
        assert_eq!(e.uid, "bbc7489b-8071-43bb-84ec-41aec618a599");
        assert_eq!(
            (e.kind.as_deref(), e.reason.as_deref()),
            (Some("Warning"), Some("BackoffLimitExceeded"))
        );
        assert_eq!(
            e.message.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        assert_eq!(e.count, 1);
        assert_eq!(e.first_timestamp.as_deref(), Some("2026-11-27T14:54:04Z"));
        assert_eq!(e.last_timestamp.as_deref(), Some("2026-11-27T14:54:04Z"));
        assert_eq!(e.source.as_deref(), Some("job-controller"));
        // `reportingComponent: ""` and `eventTime: null` in the recording: absent, not empty.
        assert_eq!(e.host, None);
        assert_eq!(
            (e.object_kind.as_deref(), e.object_name.as_deref()),
            (Some("Job"), Some("cron-fail-29929854"))
        );
    }

    #[test]
    fn events_api_shapes_use_event_time_and_series() {
        // What a scheduler of the events.k8s.io API leaves in core/v1: no first/last
        // timestamps and no count, an eventTime, and a series once it repeats.
        let e: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p.1", "namespace": "default", "uid": "u1",
                         "creationTimestamp": "2026-11-27T14:53:40Z"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "pu",
                               "apiVersion": "v1"},
            "reason": "FailedScheduling",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
            "source": {}, "firstTimestamp": null, "lastTimestamp": null, "type": "Warning",
            "eventTime": "2026-11-27T14:53:39.123456Z",
            "series": {"count": 4, "lastObservedTime": "2026-11-27T14:55:39.000001Z"},
            "action": "Scheduling", "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-node-1"
        }))
        .unwrap();
        let r = EventRecord::of(&e).unwrap();
        assert_eq!(
            r.first_timestamp.as_deref(),
            Some("2026-11-27T14:53:39.123456Z")
        );
        assert_eq!(
            r.last_timestamp.as_deref(),
            Some("2026-11-27T14:55:39.000001Z")
        );
        assert_eq!(r.count, 4);
        assert_eq!(r.source.as_deref(), Some("default-scheduler"));
        assert_eq!(r.host.as_deref(), Some("default-scheduler-node-1"));
    }

    #[test]
    fn a_set_keeps_each_event_once_at_its_latest_count() {
        let mut base = recorded_events().remove(0);
        let mut set = EventSet::default();
        assert!(set.add(base.clone()));
        assert!(
            !set.add(base.clone()),
            "the same event again changes nothing"
        );
        base.count = 3;
        base.last_timestamp = Some("2026-11-27T14:56:00Z".into());
        assert!(set.add(base.clone()));
        let mut stale = base.clone();
        stale.count = 2;
        assert!(!set.add(stale), "an older view of it does not go back");
        assert_eq!(set.sorted(), vec![base]);
        let back = EventSet::from_ndjson(&set.to_ndjson());
        assert_eq!(back, set);
    }

    #[test]
    fn a_failed_job_record_from_the_recorded_job() {
        let events = recorded_events();
        let j = job("cron-fail-29929855");
        let mine = of_object(&events, CRON_FAIL_55);
        let r = JobRecord::from_job(&who("cron-fail-29929855", CRON_FAIL_55), &j, mine);
        assert_eq!(r.source, FROM_API);
        assert_eq!(r.note, None);
        assert_eq!(r.cronjob.as_deref(), Some("cron-fail"));
        let c = r.condition.as_ref().unwrap();
        assert_eq!(
            (c.kind.as_str(), c.reason.as_deref(), c.from.as_str()),
            ("Failed", Some("BackoffLimitExceeded"), "status")
        );
        let spec = r.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        let status = r.status.as_ref().unwrap();
        assert_eq!((status.failed, status.succeeded), (1, 0));
        assert_eq!(
            r.events
                .iter()
                .map(|e| e.reason.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["SuccessfulCreate", "BackoffLimitExceeded"]
        );
    }

    #[test]
    fn completed_and_ttl_jobs_keep_their_spec() {
        let j = job("ttl-ok");
        let r = JobRecord::from_job(&who("ttl-ok", "u"), &j, Vec::new());
        assert_eq!(r.condition.as_ref().unwrap().kind, "Complete");
        assert_eq!(r.spec.as_ref().unwrap().ttl_seconds_after_finished, Some(5));
        let j = job("indexed");
        let r = JobRecord::from_job(&who("indexed", "u"), &j, Vec::new());
        let spec = r.spec.unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(2), Some(2)));
        assert_eq!(spec.containers.len(), 2);
    }

    #[test]
    fn a_gone_job_takes_its_final_condition_from_its_events() {
        let events = of_object(&recorded_events(), CRON_FAIL_54);
        let mut w = who("cron-fail-29929854", CRON_FAIL_54);
        w.cronjob = Some("cron-fail".into());
        let r = JobRecord::gone(&w, None, None, events);
        assert_eq!(r.source, FROM_GONE);
        let c = r.condition.as_ref().unwrap();
        assert_eq!(
            (c.kind.as_str(), c.reason.as_deref(), c.from.as_str()),
            ("Failed", Some("BackoffLimitExceeded"), "events")
        );
        assert_eq!(c.time.as_deref(), Some("2026-11-27T14:54:04Z"));
        let note = r.note.unwrap();
        assert!(
            note.contains("left the Kubernetes API")
                && note.contains("its spec")
                && note.contains("Events"),
            "{note}"
        );

        let none = JobRecord::gone(&w, None, None, Vec::new());
        assert_eq!(none.condition, None);
        assert!(none.note.unwrap().contains("none of its Events reports"));
    }

    #[test]
    fn merging_is_a_union_whatever_the_order() {
        let all = of_object(&recorded_events(), CRON_FAIL_55);
        let j = job("cron-fail-29929855");
        let w = who("cron-fail-29929855", CRON_FAIL_55);
        let early = JobRecord::from_job(&w, &j, all[..1].to_vec());
        let late = JobRecord::from_job(&w, &j, all[1..].to_vec());
        let gone = JobRecord::gone(&w, None, None, all[1..].to_vec());
        let a = early.clone().merge(late.clone()).merge(gone.clone());
        let b = gone.merge(late).merge(early);
        assert_eq!(a, b);
        assert_eq!(a.source, FROM_API);
        assert_eq!(a.events.len(), 2);
        assert_eq!(
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap()
        );
    }
}
