//! `jobarchive describe`'s content: the `kubectl describe job` one can still run a month later,
//! built from what the bucket holds for one run of a Job (its record, each attempt's footprint,
//! manifest and Events) and rendered as aligned text or JSON. Pure: the command (cli/describe.rs)
//! reads the store, this turns documents into words, so every case is testable without a store.
//!
//! What the archive cannot tell is said, with the reason (path-only metadata, no Job record, an
//! attempt without Events or footprint), instead of being left blank.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::record::{
    EventRecord, EventSet, FinalCondition, JobRecord, JobSpecSummary, JobStatusSummary, FROM_API,
};
use crate::contract::{Manifest, UNKNOWN_UID};
use crate::footprint::report::{fmt_bytes, fmt_duration, fmt_number};
use crate::footprint::{parse_unix, timeline::is_routine_waiting, Footprint};

/// The Events object of one attempt, as read from the store.
#[derive(Clone, Debug, Default)]
pub struct AttemptEvents {
    pub attempt: u32,
    pub pod: String,
    pub events: Vec<EventRecord>,
}

/// Everything the bucket holds about one run of a Job.
#[derive(Clone, Debug, Default)]
pub struct Archived {
    pub cluster: String,
    pub namespace: String,
    pub job: String,
    pub job_uid: String,
    /// Where the Job record was looked for (said when it is missing).
    pub record_key: String,
    pub record: Option<JobRecord>,
    pub footprints: Vec<Footprint>,
    pub manifests: Vec<Manifest>,
    pub events: Vec<AttemptEvents>,
    /// Other runs of the same Job name exist: the pointers then name this one's uid.
    pub other_runs: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Description {
    pub cluster: String,
    pub namespace: String,
    pub job: String,
    pub job_uid: String,
    pub cronjob: Option<String>,
    /// `api`, `gone` (the record was written after the Job left the API) or null (no record).
    pub record: Option<String>,
    pub created: Option<String>,
    pub condition: Option<FinalCondition>,
    pub spec: Option<JobSpecSummary>,
    pub status: Option<JobStatusSummary>,
    pub attempts: Vec<Attempt>,
    /// The Job's and every attempt's Events, once each, in time order.
    pub events: Vec<TimelineEvent>,
    /// What the archive cannot say about this run, and why.
    pub unknown: Vec<String>,
    /// Commands that show more.
    pub next: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub pod: String,
    pub pod_uid: Option<String>,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub created: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub deleted: Option<String>,
    pub waiting_seconds: Option<f64>,
    pub waiting_reason: Option<String>,
    /// The kubelet's word on why (its last `Failed` Event of the pod), when it stayed Waiting.
    pub waiting_message: Option<String>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millicores: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage_seconds: Option<f64>,
    pub reserved_memory_byte_seconds: Option<f64>,
    pub used_memory_byte_seconds: Option<f64>,
    pub oom_kills: Option<u64>,
    pub containers: Vec<ContainerLine>,
    /// Log lines archived, over its containers; null without a manifest.
    pub log_lines: Option<u64>,
    /// Archived Events of the pod; null when none were archived.
    pub events: Option<usize>,
    pub footprint: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ContainerLine {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub restarts: u32,
    pub log_lines: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// The attempt the Event is about; null for the Job's own.
    pub attempt: Option<u32>,
    #[serde(flatten)]
    pub event: EventRecord,
}

pub fn describe(a: Archived) -> Description {
    let record = a.record.clone();
    let attempts = attempts(&a);
    let events = timeline(&a, &attempts);
    let mut d = Description {
        cluster: a.cluster.clone(),
        namespace: a.namespace.clone(),
        job: a.job.clone(),
        job_uid: a.job_uid.clone(),
        cronjob: record
            .as_ref()
            .and_then(|r| r.cronjob.clone())
            .or_else(|| a.footprints.iter().find_map(|f| f.cronjob.clone()))
            .or_else(|| a.manifests.iter().find_map(|m| m.pod.cronjob.clone())),
        record: record.as_ref().map(|r| r.source.clone()),
        created: record.as_ref().and_then(|r| r.created.clone()),
        condition: record.as_ref().and_then(|r| r.condition.clone()),
        spec: record.as_ref().and_then(|r| r.spec.clone()),
        status: record.as_ref().and_then(|r| r.status.clone()),
        attempts,
        events,
        unknown: Vec::new(),
        next: Vec::new(),
    };
    d.unknown = unknowns(&a, &d);
    d.next = pointers(&a, &d);
    d
}

/// Attempts from footprints, manifests and Events objects, by (attempt, pod).
fn attempts(a: &Archived) -> Vec<Attempt> {
    let mut by: BTreeMap<(u32, String), Attempt> = BTreeMap::new();
    let entry = |by: &mut BTreeMap<(u32, String), Attempt>, attempt: u32, pod: &str| {
        by.entry((attempt, pod.to_string()))
            .or_insert_with(|| Attempt {
                attempt,
                pod: pod.to_string(),
                ..Attempt::default()
            })
            .attempt
    };
    for f in &a.footprints {
        entry(&mut by, f.attempt, &f.pod);
        let at = by.get_mut(&(f.attempt, f.pod.clone())).expect("just added");
        at.footprint = true;
        at.pod_uid = Some(f.pod_uid.clone()).filter(|u| !u.is_empty());
        at.node = Some(f.node.clone()).filter(|n| !n.is_empty());
        at.phase = f.phase.clone();
        at.reason = f.reason.clone();
        at.exit_code = f.exit_code;
        at.created = f.scheduled.clone().or(f.created.clone());
        at.started = f.started.clone();
        at.finished = f.finished.clone();
        at.deleted = f.deleted.clone();
        at.waiting_seconds = f.waiting_seconds;
        at.waiting_reason = f.waiting_reason.clone();
        at.memory_request_bytes = f.memory_request_bytes;
        at.memory_limit_bytes = f.memory_limit_bytes;
        at.cpu_request_millicores = f.cpu_request_millicores;
        at.memory_peak_bytes = f.memory_peak_bytes;
        at.cpu_usage_seconds = f.cpu_usage_seconds;
        at.reserved_memory_byte_seconds = f.reserved_memory_byte_seconds;
        at.used_memory_byte_seconds = f.used_memory_byte_seconds;
        at.oom_kills = f.oom_kills.filter(|n| *n > 0);
        at.containers = f
            .containers
            .iter()
            .filter_map(|c| {
                Some(ContainerLine {
                    name: c.name.clone()?,
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    restarts: c.restarts,
                    log_lines: None,
                })
            })
            .collect();
    }
    for m in &a.manifests {
        entry(&mut by, m.pod.attempt, &m.pod.pod);
        let at = by
            .get_mut(&(m.pod.attempt, m.pod.pod.clone()))
            .expect("just added");
        at.node = at.node.take().or(Some(m.pod.node.clone()));
        at.pod_uid = at.pod_uid.take().or(Some(m.pod.pod_uid.clone()));
        let mut lines: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &m.containers {
            *lines.entry(c.container.as_str()).or_default() += c.record_count();
        }
        at.log_lines = Some(at.log_lines.unwrap_or(0) + lines.values().sum::<u64>());
        for (name, n) in lines {
            match at.containers.iter_mut().find(|c| c.name == name) {
                Some(c) => c.log_lines = Some(c.log_lines.unwrap_or(0) + n),
                None => at.containers.push(ContainerLine {
                    name: name.to_string(),
                    log_lines: Some(n),
                    ..ContainerLine::default()
                }),
            }
        }
    }
    for e in &a.events {
        entry(&mut by, e.attempt, &e.pod);
        let at = by.get_mut(&(e.attempt, e.pod.clone())).expect("just added");
        at.events = Some(at.events.unwrap_or(0) + e.events.len());
        if at.pod_uid.is_none() {
            at.pod_uid = e.events.iter().find_map(|e| e.object_uid.clone());
        }
        let stuck = at
            .waiting_reason
            .as_deref()
            .is_some_and(|r| !is_routine_waiting(r));
        if stuck {
            at.waiting_message = e
                .events
                .iter()
                .filter(|e| {
                    e.kind.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Failed")
                })
                .max_by_key(|e| e.last_nanos())
                .and_then(|e| e.message.clone());
        }
    }
    let mut all: Vec<Attempt> = by.into_values().collect();
    all.sort_by(|x, y| {
        let start = |a: &Attempt| {
            a.created
                .as_deref()
                .and_then(parse_unix)
                .unwrap_or(f64::MAX)
        };
        x.attempt
            .cmp(&y.attempt)
            .then(start(x).total_cmp(&start(y)))
            .then(x.pod.cmp(&y.pod))
    });
    all
}

fn timeline(a: &Archived, attempts: &[Attempt]) -> Vec<TimelineEvent> {
    let mut set = EventSet::default();
    if let Some(r) = &a.record {
        set.extend(r.events.iter().cloned());
    }
    for e in &a.events {
        set.extend(e.events.iter().cloned());
    }
    let by_uid: BTreeMap<&str, u32> = attempts
        .iter()
        .filter_map(|at| Some((at.pod_uid.as_deref()?, at.attempt)))
        .collect();
    set.sorted()
        .into_iter()
        .map(|event| TimelineEvent {
            attempt: event
                .object_uid
                .as_deref()
                .and_then(|u| by_uid.get(u).copied())
                .filter(|_| event.object_kind.as_deref() != Some("Job")),
            event,
        })
        .collect()
}

fn list(numbers: &[u32]) -> String {
    let words: Vec<String> = numbers.iter().map(u32::to_string).collect();
    match words.len() {
        1 => format!("attempt {}", words[0]),
        _ => format!("attempts {}", words.join(", ")),
    }
}

fn unknowns(a: &Archived, d: &Description) -> Vec<String> {
    let mut out = Vec::new();
    let path_only = a.job_uid == UNKNOWN_UID;
    if path_only {
        out.push("the Job's spec, final condition and Events: the agent ran without the Kubernetes API (job_uid unknown), so it recorded neither Events nor a Job record; phases, exit codes and requests are only known where a footprint has them".to_string());
    } else {
        match &a.record {
            None => out.push(format!(
                "the Job's spec and final condition: no Job record at {} (the agent writes it once the Job has ended, or left the API, after its last pod on a node ended: the Job may still be running, or the agent could not read Jobs and Events)",
                a.record_key
            )),
            Some(r) => {
                if let Some(note) = &r.note {
                    out.push(format!("{note} (Job record at {})", a.record_key));
                }
            }
        }
    }
    let missing = |f: &dyn Fn(&Attempt) -> bool| -> Vec<u32> {
        d.attempts
            .iter()
            .filter(|at| f(at))
            .map(|at| at.attempt)
            .collect()
    };
    let no_footprint = missing(&|at| !at.footprint);
    if !no_footprint.is_empty() {
        out.push(format!(
            "phase, exit code, requests and usage of {}: no footprint archived",
            list(&no_footprint)
        ));
    }
    if !path_only {
        let no_events = missing(&|at| at.events.is_none());
        if !no_events.is_empty() {
            out.push(format!(
                "Events of {}: none archived (the agent could not list Events, or ran without the Kubernetes API when the pod lived)",
                list(&no_events)
            ));
        }
    }
    let no_usage =
        missing(&|at| at.footprint && at.memory_peak_bytes.is_none() && at.started.is_some());
    if !no_usage.is_empty() {
        out.push(format!(
            "memory and CPU used by {}: no cgroup sample was taken",
            list(&no_usage)
        ));
    }
    out
}

fn pointers(a: &Archived, d: &Description) -> Vec<String> {
    let mut scope = String::new();
    if a.namespace != "default" {
        scope.push_str(&format!(" -n {}", a.namespace));
    }
    if a.other_runs {
        scope.push_str(&format!(" --job-uid {}", a.job_uid));
    }
    let mut out = Vec::new();
    if d.attempts
        .iter()
        .any(|at| at.log_lines.is_some_and(|n| n > 0))
    {
        out.push(format!(
            "jobarchive fetch {}{scope} --attempt last --timestamps    # the last attempt's log",
            a.job
        ));
    }
    if d.attempts.iter().any(|at| at.footprint) {
        out.push(format!(
            "jobarchive report {}{scope} --plot {}.svg    # reserved against used, and a request recommendation",
            a.job, a.job
        ));
    }
    out
}

impl Description {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a description serializes")
    }

    pub fn to_text(&self) -> String {
        let clock = Clock::for_description(self);
        let mut out = String::new();
        let mut head = Fields::default();
        head.add("Name", &self.job);
        head.add("Namespace", &self.namespace);
        head.add("Cluster", &self.cluster);
        head.add("Job UID", &self.job_uid);
        head.add("CronJob", self.cronjob.as_deref().unwrap_or("<none>"));
        if let Some(day) = &clock.day {
            head.add("Times", &format!("UTC, {day}"));
        }
        if let Some(created) = &self.created {
            head.add("Created", &clock.at(created));
        }
        if let Some(spec) = &self.spec {
            spec_fields(&mut head, spec);
        }
        if let Some(status) = &self.status {
            if let Some(start) = &status.start_time {
                head.add("Start Time", &clock.at(start));
            }
            if let Some(done) = &status.completion_time {
                head.add("Completed At", &clock.at(done));
            }
            head.add(
                "Pods Statuses",
                &format!(
                    "{} Active / {} Succeeded / {} Failed",
                    status.active, status.succeeded, status.failed
                ),
            );
        }
        head.add("Condition", &self.condition_text(&clock));
        head.add(
            "Record",
            match self.record.as_deref() {
                Some(FROM_API) => "from the Job object at its final condition",
                Some(_) => "written after the Job left the API (see Unknown)",
                None => "none (see Unknown)",
            },
        );
        head.render(&mut out, "");
        if let Some(spec) = &self.spec {
            pod_template(&mut out, spec);
        }
        self.attempts_text(&mut out, &clock);
        self.events_text(&mut out, &clock);
        if !self.unknown.is_empty() {
            let _ = writeln!(out, "Unknown:");
            for u in &self.unknown {
                let _ = writeln!(out, "  - {u}");
            }
        }
        if !self.next.is_empty() {
            let _ = writeln!(out, "Next:");
            for n in &self.next {
                let _ = writeln!(out, "  {n}");
            }
        }
        out
    }

    fn condition_text(&self, clock: &Clock) -> String {
        match &self.condition {
            Some(c) => {
                let mut text = c.kind.clone();
                if let Some(reason) = &c.reason {
                    text.push_str(&format!(" ({reason})"));
                }
                if let Some(message) = &c.message {
                    text.push_str(&format!(": {message}"));
                }
                if let Some(at) = &c.time {
                    text.push_str(&format!(", at {}", clock.at(at)));
                }
                if c.from == "events" {
                    text.push_str(" [from the Job's Events]");
                }
                text
            }
            None if self.record.as_deref() == Some(FROM_API) => {
                "none: it had not completed or failed".into()
            }
            None if self.record.is_some() => {
                "none known: it left the API without completing or failing, as far as its Events tell"
                    .into()
            }
            None => "unknown".into(),
        }
    }

    fn attempts_text(&self, out: &mut String, clock: &Clock) {
        let nodes: BTreeSet<&str> = self
            .attempts
            .iter()
            .filter_map(|a| a.node.as_deref())
            .collect();
        let outcomes = outcome_counts(&self.attempts);
        let mut title = format!("Attempts:  {}{outcomes}", self.attempts.len());
        if nodes.len() == 1 {
            title.push_str(&format!(", on node {}", nodes.first().expect("one")));
        }
        let _ = writeln!(out, "{title}");
        let by_node = nodes.len() > 1;
        let cpu = self
            .attempts
            .iter()
            .any(|a| a.cpu_request_millicores.is_some());
        let mut header = vec!["#", "POD"];
        if by_node {
            header.push("NODE");
        }
        header.extend([
            "START", "END", "PHASE", "EXIT", "WAITING", "MEM REQ", "PEAK",
        ]);
        if cpu {
            header.extend(["CPU REQ", "CPU USED"]);
        }
        header.extend(["LINES", "EVENTS"]);
        let mut rows = Vec::new();
        for a in &self.attempts {
            let mut row = vec![a.attempt.to_string(), a.pod.clone()];
            if by_node {
                row.push(dash(a.node.clone()));
            }
            let end = a.finished.as_ref().or(a.deleted.as_ref());
            row.extend([
                dash(a.created.as_deref().map(|t| clock.at(t))),
                dash(end.map(|t| clock.at(t))),
                dash(a.phase.clone()),
                exit_text(a.exit_code, a.reason.as_deref()),
                dash(a.waiting_seconds.map(fmt_duration)),
                dash(a.memory_request_bytes.map(fmt_bytes)),
                dash(a.memory_peak_bytes.map(fmt_bytes)),
            ]);
            if cpu {
                row.push(dash(a.cpu_request_millicores.map(|m| format!("{m}m"))));
                row.push(dash(
                    a.cpu_usage_seconds.map(|s| format!("{} s", fmt_number(s))),
                ));
            }
            row.push(dash(a.log_lines.map(|n| n.to_string())));
            row.push(dash(a.events.map(|n| n.to_string())));
            rows.push(row);
        }
        let right = |h: &str| {
            matches!(
                h,
                "#" | "MEM REQ" | "PEAK" | "CPU REQ" | "CPU USED" | "LINES" | "EVENTS" | "WAITING"
            )
        };
        table(out, "  ", &header, &rows, &right);
        for a in &self.attempts {
            for remark in remarks(a, clock) {
                let _ = writeln!(out, "  {}: {remark}", a.attempt);
            }
        }
    }

    fn events_text(&self, out: &mut String, clock: &Clock) {
        if self.events.is_empty() {
            let _ = writeln!(out, "Events:    <none archived>");
            return;
        }
        let _ = writeln!(out, "Events:    {}", self.events.len());
        let header = ["TIME", "TYPE", "REASON", "OBJECT", "FROM", "MESSAGE"];
        let rows: Vec<Vec<String>> = self
            .events
            .iter()
            .map(|t| {
                let e = &t.event;
                let object = match (t.attempt, e.object_kind.as_deref()) {
                    (Some(n), _) => format!("attempt {n}"),
                    (None, Some("Job")) => "job".to_string(),
                    (None, kind) => format!(
                        "{}/{}",
                        kind.unwrap_or("?").to_lowercase(),
                        e.object_name.as_deref().unwrap_or("?")
                    ),
                };
                let mut message = e.message.clone().unwrap_or_default().replace('\n', " ");
                if e.count > 1 {
                    let span = match (e.first_timestamp.as_deref(), e.last_timestamp.as_deref()) {
                        (Some(f), Some(l)) => parse_unix(l)
                            .zip(parse_unix(f))
                            .map(|(l, f)| format!(" over {}", fmt_duration(l - f))),
                        _ => None,
                    };
                    message.push_str(&format!(" (x{}{})", e.count, span.unwrap_or_default()));
                }
                vec![
                    dash(e.first_timestamp.as_deref().map(|t| clock.at(t))),
                    dash(e.kind.clone()),
                    dash(e.reason.clone()),
                    object,
                    dash(e.source.clone()),
                    message,
                ]
            })
            .collect();
        table(out, "  ", &header, &rows, &|_| false);
    }
}

fn spec_fields(f: &mut Fields, spec: &JobSpecSummary) {
    let or_unset = |v: Option<String>| v.unwrap_or_else(|| "<unset>".into());
    f.add(
        "Parallelism",
        &or_unset(spec.parallelism.map(|v| v.to_string())),
    );
    f.add(
        "Completions",
        &or_unset(spec.completions.map(|v| v.to_string())),
    );
    f.add("Completion Mode", &or_unset(spec.completion_mode.clone()));
    f.add(
        "Backoff Limit",
        &or_unset(spec.backoff_limit.map(|v| v.to_string())),
    );
    if let Some(per_index) = spec.backoff_limit_per_index {
        f.add("Backoff Limit Per Index", &per_index.to_string());
    }
    f.add(
        "Active Deadline",
        &or_unset(spec.active_deadline_seconds.map(|s| format!("{s}s"))),
    );
    f.add(
        "TTL After Finished",
        &or_unset(spec.ttl_seconds_after_finished.map(|s| format!("{s}s"))),
    );
}

fn pod_template(out: &mut String, spec: &JobSpecSummary) {
    let _ = writeln!(out, "Pod Template:");
    let rows: Vec<Vec<String>> = spec
        .containers
        .iter()
        .map(|c| {
            let quantities = |m: &BTreeMap<String, String>| {
                if m.is_empty() {
                    "<none>".to_string()
                } else {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                }
            };
            let name = if c.init {
                format!("{} (init)", c.name)
            } else {
                c.name.clone()
            };
            vec![
                name,
                dash(c.image.clone()),
                format!("requests {}", quantities(&c.requests)),
                format!("limits {}", quantities(&c.limits)),
            ]
        })
        .collect();
    table(out, "  ", &[], &rows, &|_| false);
}

fn outcome_counts(attempts: &[Attempt]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in attempts {
        *counts
            .entry(a.phase.as_deref().unwrap_or("unknown"))
            .or_default() += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = counts.iter().map(|(p, n)| format!("{n} {p}")).collect();
    format!(" ({})", parts.join(", "))
}

fn exit_text(code: Option<i32>, reason: Option<&str>) -> String {
    match (code, reason) {
        (Some(c), Some(r)) => format!("{c} {r}"),
        (Some(c), None) => c.to_string(),
        (None, Some(r)) => r.to_string(),
        (None, None) => "-".into(),
    }
}

/// What the row cannot show: a stuck wait and why, a deletion before the end, OOM kills, and
/// each container of a pod that has several.
fn remarks(a: &Attempt, clock: &Clock) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(secs), Some(reason)) = (a.waiting_seconds, a.waiting_reason.as_deref()) {
        if !is_routine_waiting(reason) {
            let mut text = format!("waited {} in {reason}", fmt_duration(secs));
            if let Some(m) = &a.waiting_message {
                text.push_str(&format!(" ({m})"));
            }
            if let Some(req) = a.memory_request_bytes {
                text.push_str(&format!(", holding its {} memory request", fmt_bytes(req)));
            }
            out.push(text);
        }
    }
    if let (Some(deleted), None) = (&a.deleted, &a.finished) {
        let what = if a.started.is_none() {
            "before any container started"
        } else {
            "before it finished"
        };
        out.push(format!("deleted at {} {what}", clock.at(deleted)));
    }
    if let Some(n) = a.oom_kills {
        out.push(format!("{n} OOM kill(s) in its cgroup"));
    }
    if a.containers.len() > 1 {
        let parts: Vec<String> = a
            .containers
            .iter()
            .map(|c| {
                let mut p = format!("{} {}", c.name, exit_text(c.exit_code, c.reason.as_deref()));
                if c.restarts > 0 {
                    p.push_str(&format!(", {} restarts", c.restarts));
                }
                if let Some(n) = c.log_lines {
                    p.push_str(&format!(", {n} lines"));
                }
                p
            })
            .collect();
        out.push(format!("containers: {}", parts.join("; ")));
    }
    out
}

fn dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// `Key:  value` lines with the values aligned, as kubectl prints them.
#[derive(Default)]
struct Fields {
    lines: Vec<(String, String)>,
}

impl Fields {
    fn add(&mut self, key: &str, value: &str) {
        self.lines.push((format!("{key}:"), value.to_string()));
    }

    fn render(&self, out: &mut String, indent: &str) {
        let width = self.lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.lines {
            let _ = writeln!(out, "{indent}{k:<width$}  {v}");
        }
    }
}

/// Columns padded to their widest cell; `right` names the right-aligned ones.
fn table(
    out: &mut String,
    indent: &str,
    header: &[&str],
    rows: &[Vec<String>],
    right: &dyn Fn(&str) -> bool,
) {
    let columns = rows
        .iter()
        .map(Vec::len)
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    let cell = |row: &[String], i: usize| row.get(i).cloned().unwrap_or_default();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&head))
                .map(|r| cell(r, i).chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let all = (!header.is_empty())
        .then_some(&head)
        .into_iter()
        .chain(rows);
    for row in all {
        let cells: Vec<String> = (0..columns)
            .map(|i| {
                let w = widths[i];
                let text = cell(row, i);
                if header.get(i).is_some_and(|h| right(h)) {
                    format!("{text:>w$}")
                } else {
                    format!("{text:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{indent}{}", cells.join("  ").trim_end());
    }
}

/// Times in UTC; when everything happened on one day, the day is said once and the times are
/// hours, minutes and seconds.
struct Clock {
    day: Option<String>,
}

impl Clock {
    fn for_description(d: &Description) -> Clock {
        let mut stamps: Vec<&str> = Vec::new();
        stamps.extend(d.created.as_deref());
        if let Some(s) = &d.status {
            stamps.extend(s.start_time.as_deref());
            stamps.extend(s.completion_time.as_deref());
        }
        stamps.extend(d.condition.as_ref().and_then(|c| c.time.as_deref()));
        for a in &d.attempts {
            stamps.extend(a.created.as_deref());
            stamps.extend(a.finished.as_deref());
            stamps.extend(a.deleted.as_deref());
        }
        for e in &d.events {
            stamps.extend(e.event.first_timestamp.as_deref());
        }
        let days: BTreeSet<String> = stamps.iter().filter_map(|s| day_of(s)).collect();
        Clock {
            day: (days.len() == 1).then(|| days.into_iter().next().expect("one")),
        }
    }

    fn at(&self, stamp: &str) -> String {
        let Some(t) = parse_unix(stamp) else {
            return stamp.to_string();
        };
        let text = crate::footprint::format_unix(t.floor());
        // "2026-11-27T14:00:00Z" → "14:00:00" or "2026-11-27 14:00:00".
        let (day, rest) = text.split_once('T').unwrap_or((&text, ""));
        let clock = rest.trim_end_matches('Z');
        let clock = clock.split('.').next().unwrap_or(clock);
        match &self.day {
            Some(_) => clock.to_string(),
            None => format!("{day} {clock}"),
        }
    }
}

fn day_of(stamp: &str) -> Option<String> {
    let t = parse_unix(stamp)?;
    let text = crate::footprint::format_unix(t.floor());
    text.split_once('T').map(|(d, _)| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{ContainerManifest, PodIdentity};
    use crate::footprint::ContainerFootprint;

    const GIB: u64 = 1 << 30;

    fn footprint(attempt: u32, pod: &str) -> Footprint {
        Footprint {
            job: "j".into(),
            job_uid: Some("ju".into()),
            namespace: "default".into(),
            attempt,
            pod: pod.into(),
            pod_uid: format!("uid-{pod}"),
            node: "node-1".into(),
            phase: Some("Failed".into()),
            reason: Some("Error".into()),
            exit_code: Some(1),
            scheduled: Some("2026-11-27T14:00:00Z".into()),
            started: Some("2026-11-27T14:00:02Z".into()),
            finished: Some("2026-11-27T14:00:32Z".into()),
            memory_request_bytes: Some(GIB),
            memory_peak_bytes: Some(3 << 20),
            waiting_seconds: Some(2.0),
            waiting_reason: Some("ContainerCreating".into()),
            containers: vec![ContainerFootprint {
                name: Some("main".into()),
                exit_code: Some(1),
                reason: Some("Error".into()),
                ..ContainerFootprint::default()
            }],
            is_final: true,
            ..Footprint::default()
        }
    }

    fn manifest(attempt: u32, pod: &str, uid: Option<&str>, lines: u64) -> Manifest {
        Manifest {
            pod: PodIdentity {
                cluster: "default".into(),
                node: "node-1".into(),
                namespace: "default".into(),
                pod: pod.into(),
                pod_uid: format!("uid-{pod}"),
                job: "j".into(),
                job_uid: uid.map(String::from),
                cronjob: None,
                attempt,
                completion_index: None,
            },
            updated: String::new(),
            format: crate::contract::MANIFEST_FORMAT,
            containers: vec![ContainerManifest {
                container: "main".into(),
                restart: 0,
                complete: true,
                end_offset: 10,
                parts: 1,
                object_count: 1,
                records: lines,
                bytes: 1,
                ..ContainerManifest::default()
            }],
        }
    }

    fn event(uid: &str, object: &str, kind: &str, reason: &str, at: &str) -> EventRecord {
        EventRecord {
            uid: uid.into(),
            kind: Some("Normal".into()),
            reason: Some(reason.into()),
            message: Some(format!("{reason} message")),
            count: 1,
            first_timestamp: Some(at.into()),
            last_timestamp: Some(at.into()),
            source: Some("kubelet".into()),
            object_kind: Some(kind.into()),
            object_uid: Some(object.into()),
            object_name: Some(object.into()),
            ..EventRecord::default()
        }
    }

    #[test]
    fn path_only_runs_say_what_is_unknown() {
        let d = describe(Archived {
            cluster: "default".into(),
            namespace: "default".into(),
            job: "j".into(),
            job_uid: UNKNOWN_UID.into(),
            record_key: "jobs/x".into(),
            manifests: vec![manifest(1, "j-a", None, 4)],
            ..Archived::default()
        });
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(d.attempts[0].log_lines, Some(4));
        assert_eq!(d.attempts[0].node.as_deref(), Some("node-1"));
        assert!(
            d.unknown[0].contains("without the Kubernetes API"),
            "{:?}",
            d.unknown
        );
        assert!(d.unknown[1].contains("no footprint"), "{:?}", d.unknown);
        let text = d.to_text();
        assert!(
            text.contains("Condition:  unknown") || text.contains("unknown"),
            "{text}"
        );
        assert!(text.contains("Events:    <none archived>"), "{text}");
        assert!(text.contains("jobarchive fetch j --attempt last"), "{text}");
        assert!(
            !text.contains("jobarchive report"),
            "no footprint, no report: {text}"
        );
    }

    #[test]
    fn attempts_merge_their_footprint_manifest_and_events() {
        let record = JobRecord {
            cluster: "default".into(),
            namespace: "default".into(),
            job: "j".into(),
            job_uid: "ju".into(),
            source: FROM_API.into(),
            condition: Some(FinalCondition {
                kind: "Failed".into(),
                reason: Some("BackoffLimitExceeded".into()),
                message: Some("Job has reached the specified backoff limit".into()),
                time: Some("2026-11-27T14:01:00Z".into()),
                from: "status".into(),
            }),
            events: vec![event(
                "e0",
                "ju",
                "Job",
                "SuccessfulCreate",
                "2026-11-27T14:00:00Z",
            )],
            ..JobRecord::default()
        };
        let d = describe(Archived {
            cluster: "default".into(),
            namespace: "default".into(),
            job: "j".into(),
            job_uid: "ju".into(),
            record: Some(record),
            footprints: vec![footprint(1, "j-a")],
            manifests: vec![manifest(1, "j-a", Some("ju"), 5)],
            events: vec![AttemptEvents {
                attempt: 1,
                pod: "j-a".into(),
                events: vec![event(
                    "e1",
                    "uid-j-a",
                    "Pod",
                    "Started",
                    "2026-11-27T14:00:02Z",
                )],
            }],
            ..Archived::default()
        });
        assert_eq!(d.unknown, Vec::<String>::new());
        let a = &d.attempts[0];
        assert_eq!(
            (a.log_lines, a.events, a.footprint),
            (Some(5), Some(1), true)
        );
        assert_eq!(a.containers[0].log_lines, Some(5));
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[0].attempt, None);
        assert_eq!(d.events[1].attempt, Some(1));
        let text = d.to_text();
        assert!(
            text.contains("Condition:  Failed (BackoffLimitExceeded): Job has reached the specified backoff limit, at 14:01:00"),
            "{text}"
        );
        assert!(text.contains("Times:      UTC, 2026-11-27"), "{text}");
        assert!(text.contains("attempt 1  kubelet"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
        assert_eq!(json["attempts"][0]["log_lines"], 5);
        assert_eq!(json["events"][1]["reason"], "Started");
        assert_eq!(json["condition"]["reason"], "BackoffLimitExceeded");
    }

    #[test]
    fn a_stuck_wait_is_explained_by_the_kubelets_event() {
        let mut f = footprint(1, "j-a");
        f.phase = Some("Pending".into());
        f.reason = None;
        f.exit_code = None;
        f.started = None;
        f.finished = None;
        f.deleted = Some("2026-11-27T14:15:00Z".into());
        f.waiting_seconds = Some(900.0);
        f.waiting_reason = Some("CreateContainerConfigError".into());
        let mut failed = event("e1", "uid-j-a", "Pod", "Failed", "2026-11-27T14:00:02Z");
        failed.kind = Some("Warning".into());
        failed.message = Some("Error: secret \"notpresent\" not found".into());
        failed.count = 61;
        failed.last_timestamp = Some("2026-11-27T14:15:00Z".into());
        let d = describe(Archived {
            job: "j".into(),
            job_uid: "ju".into(),
            namespace: "default".into(),
            record_key: "jobs/cluster=default/namespace=default/job=j/job_uid=ju.json".into(),
            footprints: vec![f],
            events: vec![AttemptEvents {
                attempt: 1,
                pod: "j-a".into(),
                events: vec![failed],
            }],
            ..Archived::default()
        });
        let text = d.to_text();
        assert!(
            text.contains("1: waited 15m00s in CreateContainerConfigError (Error: secret \"notpresent\" not found), holding its 1 GiB memory request"),
            "{text}"
        );
        assert!(
            text.contains("1: deleted at 14:15:00 before any container started"),
            "{text}"
        );
        assert!(text.contains("(x61 over 14m58s)"), "{text}");
        assert!(
            d.unknown[0].contains("no Job record at jobs/"),
            "{:?}",
            d.unknown
        );
    }
}
