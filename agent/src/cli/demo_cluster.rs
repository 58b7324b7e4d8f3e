//! The demo's simulated cluster: the three example Jobs (`examples/jobs/`) over a quarter of an hour, as the
//! Kubernetes API and a node's cgroup v2 tree would show them, so that `jobarchive demo` runs
//! the agent's real recorder and post-mortem collector without a cluster.
//!
//! Everything here is SIMULATED and labelled so (`jobarchive.demo/simulated: "true"` on every
//! object; the demo says so): the pod objects, Jobs and Events are shaped like a real API
//! server's (the recorded fixtures were the reference), their times are fixed, and the memory
//! and CPU readings follow simple deterministic curves. Nothing here is a measurement.
//!
//! - exit-nonzero (busybox, `sleep 30 && exit 1`, 1Gi requested, backoffLimit 6): six pods, each
//!   Waiting 2 s, running 30 s, exit 1; the Job controller's back-off of 10, 20, 40, 80, 160 s
//!   between them; then BackoffLimitExceeded.
//! - invalid-secret (1Gi requested): its container never starts (CreateContainerConfigError,
//!   secret "notpresent" not found, retried by the kubelet every 20 s) until its Job is deleted
//!   after 15 minutes, as someone would after noticing.
//! - over-provisioned (polinux/stress, `--vm-bytes 1G`, 2Gi requested): uses about 1 GiB; the
//!   demo's stress has `--timeout 600s` so that the Job completes and has a final record.

use crate::meta::{JobIdentity, Lookup, MetadataSource, PodDir, PodObjects};
use crate::postmortem::{ClusterRecords, JobLookup, JobSpecSummary, RecordsError};
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// 2026-11-27T14:00:00Z: a fixed start, so the demo archive is the same on every run.
pub const T0: i64 = 1_795_788_000;
/// Where the simulation stops: the Jobs have ended and their pods are final.
pub const END: i64 = T0 + 920;
pub const NODE: &str = "demo-node";
pub const NS: &str = "default";
const SIMULATED: &str = "jobarchive.demo/simulated";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub fn demo_uid(n: u32) -> String {
    format!("0b5e7a4c-1d2f-4e3a-9c8b-{n:012}")
}

fn ts(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A log line's time as containerd writes it, with nanoseconds.
fn cri_ts(secs: i64, nanos: u32) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::nanoseconds(nanos as i64);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f).unwrap_or_default()
}

#[derive(Clone, Copy)]
enum Usage {
    /// `sleep 30` under busybox's shell.
    Busybox,
    /// `stress --vm 1 --vm-bytes 1G --vm-hang 0`: allocates 1 GiB, touches it, then sleeps.
    Stress,
}

impl Usage {
    /// The container's memory.current `s` seconds after it started.
    fn memory(self, s: i64) -> u64 {
        match self {
            Usage::Busybox => 520 * 1024 + 4096 * (s % 5) as u64,
            Usage::Stress if s < 1 => 8 * MIB,
            Usage::Stress if s < 2 => 512 * MIB,
            Usage::Stress => GIB + 3 * MIB + MIB * (s % 3) as u64,
        }
    }

    /// Its cpu.stat usage_usec by then.
    fn cpu_usec(self, s: i64) -> u64 {
        let s = s.max(0) as u64;
        match self {
            Usage::Busybox => 2_000 + 150 * s,
            Usage::Stress if s < 2 => 450_000 * s,
            Usage::Stress => 900_000 + 200 * (s - 2),
        }
    }
}

struct SimJob {
    name: &'static str,
    uid: String,
    image: &'static str,
    command: Vec<&'static str>,
    env: Option<Value>,
    memory: &'static str,
    created: i64,
    /// When and how it ended: (time, condition, reason, message).
    ended: Option<(i64, &'static str, &'static str, &'static str)>,
    deleted: Option<i64>,
}

struct SimPod {
    job: usize,
    name: String,
    uid: String,
    attempt: u32,
    created: i64,
    started: Option<i64>,
    finished: Option<i64>,
    exit_code: i32,
    /// Never started: the kubelet's waiting reason and message.
    stuck: Option<(&'static str, &'static str)>,
    deleted: Option<i64>,
    usage: Usage,
    /// Seconds after the container started, stream, message.
    lines: Vec<(i64, &'static str, String)>,
}

impl SimPod {
    fn container_id(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!("demo-container/{}", self.uid)))
    }
}

/// One Event as the API would serve it at a time: `every` repeats it (the API server folds
/// repeats into a count) until `until`.
struct SimEvent {
    uid: String,
    object: (&'static str, String, String),
    field_path: Option<String>,
    kind: &'static str,
    reason: &'static str,
    message: String,
    component: &'static str,
    first: i64,
    every: Option<i64>,
    until: Option<i64>,
    /// Reported through events.k8s.io (the scheduler): eventTime instead of timestamps.
    events_api: bool,
}

pub struct DemoCluster {
    jobs: Vec<SimJob>,
    pods: Vec<SimPod>,
    events: Vec<SimEvent>,
    now: Mutex<i64>,
}

impl DemoCluster {
    pub fn seed() -> DemoCluster {
        let mut c = DemoCluster {
            jobs: Vec::new(),
            pods: Vec::new(),
            events: Vec::new(),
            now: Mutex::new(T0),
        };
        c.exit_nonzero();
        c.invalid_secret();
        c.over_provisioned();
        c
    }

    /// Moves the simulated clock.
    pub fn set_time(&self, t: i64) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    fn time(&self) -> i64 {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn job(
        &mut self,
        name: &'static str,
        uid: u32,
        image: &'static str,
        command: Vec<&'static str>,
        memory: &'static str,
        created: i64,
    ) -> usize {
        self.jobs.push(SimJob {
            name,
            uid: demo_uid(uid),
            image,
            command,
            env: None,
            memory,
            created,
            ended: None,
            deleted: None,
        });
        self.jobs.len() - 1
    }

    fn event(
        &mut self,
        object: (&'static str, String, String),
        reason: &'static str,
        message: String,
        first: i64,
    ) -> &mut SimEvent {
        let n = 1000 + self.events.len() as u32;
        self.events.push(SimEvent {
            uid: demo_uid(n),
            object,
            field_path: None,
            kind: "Normal",
            reason,
            message,
            component: "kubelet",
            first,
            every: None,
            until: None,
            events_api: false,
        });
        self.events.last_mut().expect("just pushed")
    }

    fn job_ref(&self, j: usize) -> (&'static str, String, String) {
        (
            "Job",
            self.jobs[j].name.to_string(),
            self.jobs[j].uid.clone(),
        )
    }

    /// A pod's arrival: the Job controller's SuccessfulCreate and the scheduler's Scheduled.
    fn add_pod(&mut self, pod: SimPod) {
        let (j, created) = (pod.job, pod.created);
        let object = ("Pod", pod.name.clone(), pod.uid.clone());
        let job = self.job_ref(j);
        let e = self.event(
            job,
            "SuccessfulCreate",
            format!("Created pod: {}", pod.name),
            created,
        );
        e.component = "job-controller";
        let e = self.event(
            object,
            "Scheduled",
            format!("Successfully assigned {NS}/{} to {NODE}", pod.name),
            created,
        );
        e.component = "default-scheduler";
        e.events_api = true;
        self.pods.push(pod);
    }

    fn container_events(&mut self, p: usize, pulled: (i64, String), started: i64) {
        let pod = &self.pods[p];
        let object = ("Pod", pod.name.clone(), pod.uid.clone());
        let container = self.jobs[pod.job].name;
        let path = Some(format!("spec.containers{{{container}}}"));
        self.event(object.clone(), "Pulled", pulled.1, pulled.0)
            .field_path = path.clone();
        self.event(
            object.clone(),
            "Created",
            format!("Created container: {container}"),
            started,
        )
        .field_path = path.clone();
        self.event(
            object,
            "Started",
            format!("Started container {container}"),
            started,
        )
        .field_path = path;
    }

    fn exit_nonzero(&mut self) {
        let j = self.job(
            "exit-nonzero",
            101,
            "busybox",
            vec!["/bin/sh", "-c", "sleep 30 && exit 1"],
            "1Gi",
            T0,
        );
        let suffixes = ["szsld", "nq9nb", "bg2hf", "9mggl", "lklmw", "txl6b"];
        let mut created = T0;
        for (i, suffix) in suffixes.iter().enumerate() {
            let attempt = i as u32 + 1;
            let started = created + 2;
            let lines = vec![
                (
                    0,
                    "stdout",
                    format!("exit-nonzero: attempt {attempt} starting, pid 1"),
                ),
                (
                    1,
                    "stdout",
                    "loading batch input from /data/input.csv".to_string(),
                ),
                (
                    12,
                    "stdout",
                    format!("processed {} of 5000 rows", 1200 + 100 * attempt),
                ),
                (
                    29,
                    "stderr",
                    "error: upstream returned 503 Service Unavailable".to_string(),
                ),
                (30, "stderr", "exiting with status 1".to_string()),
            ];
            self.add_pod(SimPod {
                job: j,
                name: format!("exit-nonzero-{suffix}"),
                uid: demo_uid(attempt),
                attempt,
                created,
                started: Some(started),
                finished: Some(started + 30),
                exit_code: 1,
                stuck: None,
                deleted: None,
                usage: Usage::Busybox,
                lines,
            });
            let p = self.pods.len() - 1;
            let pulled = "Container image \"busybox\" already present on machine".to_string();
            self.container_events(p, (created + 1, pulled), started);
            // The Job controller's back-off: 10 s after the first failure, doubling.
            created = started + 30 + (10 << i);
        }
        let end = self.pods.last().and_then(|p| p.finished).unwrap_or(T0);
        let message = "Job has reached the specified backoff limit";
        self.jobs[j].ended = Some((end, "Failed", "BackoffLimitExceeded", message));
        let job = self.job_ref(j);
        let e = self.event(job, "BackoffLimitExceeded", message.into(), end);
        e.kind = "Warning";
        e.component = "job-controller";
    }

    fn invalid_secret(&mut self) {
        let j = self.job(
            "invalid-secret",
            110,
            "busybox",
            vec!["exit 0"],
            "1Gi",
            T0 + 10,
        );
        self.jobs[j].env = Some(json!([{"name": "notpresent", "valueFrom": {"secretKeyRef":
            {"name": "notpresent", "key": "notpresent"}}}]));
        let (created, deleted) = (T0 + 10, T0 + 910);
        self.jobs[j].deleted = Some(deleted);
        self.add_pod(SimPod {
            job: j,
            name: "invalid-secret-5st25".into(),
            uid: demo_uid(10),
            attempt: 1,
            created,
            started: None,
            finished: None,
            exit_code: 0,
            stuck: Some((
                "CreateContainerConfigError",
                "secret \"notpresent\" not found",
            )),
            deleted: Some(deleted),
            usage: Usage::Busybox,
            lines: Vec::new(),
        });
        let pod = &self.pods[self.pods.len() - 1];
        let object = ("Pod", pod.name.clone(), pod.uid.clone());
        let path = Some("spec.containers{invalid-secret}".to_string());
        // The kubelet tries again every 20 s, and each time reports both.
        for (reason, kind, message) in [
            (
                "Pulled",
                "Normal",
                "Container image \"busybox\" already present on machine",
            ),
            (
                "Failed",
                "Warning",
                "Error: secret \"notpresent\" not found",
            ),
        ] {
            let e = self.event(object.clone(), reason, message.into(), created + 1);
            e.kind = kind;
            e.every = Some(20);
            e.until = Some(deleted);
            e.field_path = path.clone();
        }
    }

    fn over_provisioned(&mut self) {
        let j = self.job(
            "over-provisioned",
            120,
            "polinux/stress",
            vec![
                "stress",
                "--vm",
                "1",
                "--vm-bytes",
                "1G",
                "--vm-hang",
                "0",
                "--timeout",
                "600s",
            ],
            "2Gi",
            T0 + 20,
        );
        let (created, started) = (T0 + 20, T0 + 23);
        let finished = started + 600;
        let lines = vec![
            (
                0,
                "stdout",
                "stress: info: [1] dispatching hogs: 0 cpu, 0 io, 1 vm, 0 hdd".to_string(),
            ),
            (
                1,
                "stdout",
                "stress: dbug: [1] using backoff sleep of 3000us".to_string(),
            ),
            (
                1,
                "stdout",
                "stress: dbug: [7] allocating 1073741824 bytes ...".to_string(),
            ),
            (
                2,
                "stdout",
                "stress: dbug: [7] touching bytes in strides of 4096 bytes ...".to_string(),
            ),
            // A 40 KiB line: the runtime writes it as partial chunks; the archive joins them again.
            (
                3,
                "stdout",
                format!(
                    "stress: dbug: [7] page map: {}",
                    "0x7f3a2c000000-rw ".repeat(2300)
                ),
            ),
            (
                600,
                "stdout",
                "stress: info: [1] successful run completed in 600s".to_string(),
            ),
        ];
        self.add_pod(SimPod {
            job: j,
            name: "over-provisioned-k7d2x".into(),
            uid: demo_uid(20),
            attempt: 1,
            created,
            started: Some(started),
            finished: Some(finished),
            exit_code: 0,
            stuck: None,
            deleted: None,
            usage: Usage::Stress,
            lines,
        });
        let p = self.pods.len() - 1;
        let object = ("Pod", self.pods[p].name.clone(), self.pods[p].uid.clone());
        self.event(
            object,
            "Pulling",
            "Pulling image \"polinux/stress\"".into(),
            created + 1,
        )
        .field_path = Some("spec.containers{over-provisioned}".into());
        let pulled = "Successfully pulled image \"polinux/stress\" in 1.873s (1.873s including waiting). Image size: 4041495 bytes.".to_string();
        self.container_events(p, (started, pulled), started);
        self.jobs[j].ended = Some((
            finished,
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ));
        let job = self.job_ref(j);
        self.event(job, "Completed", "Job completed".into(), finished)
            .component = "job-controller";
    }

    /// Every pod's log files, as the kubelet and containerd leave them under /var/log/pods; a
    /// pod whose container never started has an empty folder.
    pub fn write_logs(&self, dir: &Path) -> std::io::Result<()> {
        for p in &self.pods {
            let container = self.jobs[p.job].name;
            let folder = dir.join(format!("{NS}_{}_{}", p.name, p.uid));
            std::fs::create_dir_all(&folder)?;
            let Some(started) = p.started else {
                continue;
            };
            let mut text = String::new();
            for (i, (at, stream, msg)) in p.lines.iter().enumerate() {
                let stamp = cri_ts(started + at, i as u32 * 1_000_117);
                // containerd splits lines longer than 16 KiB into P chunks ended by an F chunk.
                let chunks: Vec<&str> = msg
                    .as_bytes()
                    .chunks(16 * 1024)
                    .map(|c| std::str::from_utf8(c).unwrap_or(""))
                    .collect();
                for (k, chunk) in chunks.iter().enumerate() {
                    let tag = if k + 1 == chunks.len() { "F" } else { "P" };
                    let _ = writeln!(text, "{stamp} {stream} {tag} {chunk}");
                }
            }
            std::fs::create_dir_all(folder.join(container))?;
            std::fs::write(folder.join(container).join("0.log"), text)?;
        }
        Ok(())
    }

    /// The kubelet removes the log folder of a deleted pod.
    pub fn remove_deleted_folders(&self, dir: &Path) -> std::io::Result<()> {
        let t = self.time();
        for p in self
            .pods
            .iter()
            .filter(|p| p.deleted.is_some_and(|d| d <= t))
        {
            let folder = dir.join(format!("{NS}_{}_{}", p.name, p.uid));
            if folder.exists() {
                std::fs::remove_dir_all(folder)?;
            }
        }
        Ok(())
    }

    /// The node's cgroup v2 tree at the current time (systemd driver, Burstable pods): a pod
    /// with a running container has its cgroup and the container's scope, with readings from
    /// the pod's usage curve; the kubelet removes it 10 s after the container exited.
    pub fn write_cgroups(&self, root: &Path) -> std::io::Result<()> {
        let t = self.time();
        for p in &self.pods {
            let slice = root.join(format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
                p.uid.replace('-', "_")
            ));
            let Some(started) = p.started.filter(|s| *s <= t) else {
                continue;
            };
            let end = p.finished.unwrap_or(i64::MAX);
            if t >= end.saturating_add(10) {
                if slice.exists() {
                    std::fs::remove_dir_all(&slice)?;
                }
                continue;
            }
            let s = t.min(end) - started;
            let scope = slice.join(format!("cri-containerd-{}.scope", p.container_id()));
            std::fs::create_dir_all(&scope)?;
            let memory = p.usage.memory(s);
            let peak = (0..=s).map(|x| p.usage.memory(x)).max().unwrap_or(memory);
            let cpu = p.usage.cpu_usec(s);
            // The pod's cgroup adds the pause container's few hundred KiB.
            const PAUSE: u64 = 180 * 1024;
            write_usage(&slice, memory + PAUSE, cpu + 1_000, peak + PAUSE)?;
            write_usage(&scope, memory, cpu, peak)?;
        }
        Ok(())
    }

    fn pod_object(&self, p: &SimPod, t: i64) -> Option<Pod> {
        if t < p.created || p.deleted.is_some_and(|d| d <= t) {
            return None;
        }
        let job = &self.jobs[p.job];
        let container = job.name;
        let cid = format!("containerd://{}", p.container_id());
        let scheduled = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                               "lastTransitionTime": ts(p.created)});
        let (phase, state, conditions) = match (p.started, p.finished) {
            (Some(s), Some(f)) if f <= t => {
                let reason = if p.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                let phase = if p.exit_code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                };
                (
                    phase,
                    json!({"terminated": {"exitCode": p.exit_code, "reason": reason,
                    "startedAt": ts(s), "finishedAt": ts(f), "containerID": cid}}),
                    json!([{"type": "Ready", "status": "False", "lastProbeTime": null,
                         "lastTransitionTime": ts(f), "reason": "PodCompleted"}, scheduled]),
                )
            }
            (Some(s), _) if s <= t => (
                "Running",
                json!({"running": {"startedAt": ts(s)}}),
                json!([{"type": "Ready", "status": "True", "lastProbeTime": null,
                        "lastTransitionTime": ts(s)}, scheduled]),
            ),
            _ => {
                let (reason, message) = p.stuck.unwrap_or(("ContainerCreating", ""));
                let mut waiting = json!({"reason": reason});
                if !message.is_empty() {
                    waiting["message"] = json!(message);
                }
                ("Pending", json!({"waiting": waiting}), json!([scheduled]))
            }
        };
        let mut status = json!({"name": container, "state": state, "lastState": {},
            "ready": phase == "Running", "restartCount": 0, "image": job.image, "imageID": "",
            "started": phase == "Running"});
        if p.started.is_some_and(|s| s <= t) {
            status["containerID"] = json!(cid);
        }
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": p.name, "generateName": format!("{container}-"), "namespace": NS,
                "uid": p.uid, "creationTimestamp": ts(p.created),
                "labels": labels(job),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job.name,
                    "uid": job.uid, "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {"containers": [container_spec(job)], "restartPolicy": "Never",
                     "nodeName": NODE, "schedulerName": "default-scheduler"},
            "status": {"phase": phase, "conditions": conditions, "hostIP": "10.0.0.7",
                       "startTime": ts(p.created), "containerStatuses": [status],
                       "qosClass": "Burstable"}
        });
        serde_json::from_value(pod).ok()
    }

    fn job_object(&self, j: &SimJob, t: i64) -> Option<Job> {
        if t < j.created || j.deleted.is_some_and(|d| d <= t) {
            return None;
        }
        let pods: Vec<&SimPod> = self
            .pods
            .iter()
            .filter(|p| self.jobs[p.job].uid == j.uid && p.created <= t)
            .collect();
        let done = |p: &&SimPod| p.finished.is_some_and(|f| f <= t);
        let failed = pods.iter().filter(|p| done(p) && p.exit_code != 0).count();
        let succeeded = pods.iter().filter(|p| done(p) && p.exit_code == 0).count();
        let mut status = json!({"startTime": ts(j.created), "failed": failed, "succeeded": succeeded,
                                "active": pods.len() - failed - succeeded,
                                "uncountedTerminatedPods": {}});
        if let Some((at, kind, reason, message)) = j.ended.filter(|e| e.0 <= t) {
            status["conditions"] = json!([{"type": kind, "status": "True", "lastProbeTime": ts(at),
                "lastTransitionTime": ts(at), "reason": reason, "message": message}]);
            if kind == "Complete" {
                status["completionTime"] = json!(ts(at));
            }
        }
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": j.name, "namespace": NS, "uid": j.uid,
                         "creationTimestamp": ts(j.created), "labels": labels(j)},
            "spec": {"parallelism": 1, "completions": 1, "completionMode": "NonIndexed",
                     "backoffLimit": 6, "suspend": false,
                     "template": {"metadata": {"labels": labels(j)},
                                  "spec": {"containers": [container_spec(j)],
                                           "restartPolicy": "Never"}}},
            "status": status
        });
        serde_json::from_value(job).ok()
    }

    fn event_object(&self, e: &SimEvent, t: i64) -> Option<Event> {
        if e.first > t {
            return None;
        }
        let last_at = e.until.map_or(t, |u| t.min(u));
        let count = e.every.map_or(1, |every| 1 + (last_at - e.first) / every);
        let last = e.first + e.every.unwrap_or(0) * (count - 1);
        let mut involved = json!({"kind": e.object.0, "namespace": NS, "name": e.object.1,
            "uid": e.object.2,
            "apiVersion": if e.object.0 == "Job" { "batch/v1" } else { "v1" }});
        if let Some(path) = &e.field_path {
            involved["fieldPath"] = json!(path);
        }
        let mut event = json!({
            "metadata": {"name": format!("{}.{}", e.object.1, &e.uid[24..]), "namespace": NS,
                         "uid": e.uid, "creationTimestamp": ts(e.first),
                         "labels": {SIMULATED: "true"}},
            "involvedObject": involved, "reason": e.reason, "message": e.message,
            "type": e.kind
        });
        if e.events_api {
            event["source"] = json!({});
            event["firstTimestamp"] = Value::Null;
            event["lastTimestamp"] = Value::Null;
            event["eventTime"] = json!(format!("{}.000000Z", ts(e.first).trim_end_matches('Z')));
            event["action"] = json!("Binding");
            event["reportingComponent"] = json!(e.component);
            event["reportingInstance"] = json!(format!("{}-{NODE}", e.component));
        } else {
            let host = if e.component == "kubelet" {
                json!(NODE)
            } else {
                Value::Null
            };
            event["source"] = json!({"component": e.component, "host": host});
            event["firstTimestamp"] = json!(ts(e.first));
            event["lastTimestamp"] = json!(ts(last));
            event["count"] = json!(count);
            event["eventTime"] = Value::Null;
            event["reportingComponent"] = json!(e.component);
            event["reportingInstance"] = json!(if e.component == "kubelet" { NODE } else { "" });
        }
        serde_json::from_value(event).ok()
    }
}

fn labels(job: &SimJob) -> Value {
    json!({"batch.kubernetes.io/controller-uid": job.uid, "batch.kubernetes.io/job-name": job.name,
           "controller-uid": job.uid, "job-name": job.name, SIMULATED: "true"})
}

fn container_spec(job: &SimJob) -> Value {
    let mut c = json!({"name": job.name, "image": job.image, "command": job.command,
        "resources": {"requests": {"memory": job.memory}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"});
    if let Some(env) = &job.env {
        c["env"] = env.clone();
    }
    c
}

/// The interface files the agent reads, in the kernel's formats.
fn write_usage(dir: &Path, memory: u64, usage_usec: u64, peak: u64) -> std::io::Result<()> {
    std::fs::write(dir.join("memory.current"), format!("{memory}\n"))?;
    std::fs::write(dir.join("memory.peak"), format!("{peak}\n"))?;
    std::fs::write(
        dir.join("cpu.stat"),
        format!(
            "usage_usec {usage_usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
            usage_usec * 2 / 3,
            usage_usec / 3
        ),
    )?;
    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    )
}

impl MetadataSource for DemoCluster {
    /// Known once created, like a pod the watch has seen (deleted ones included).
    fn lookup(&self, dir: &PodDir) -> Lookup {
        let t = self.time();
        match self.pods.iter().find(|p| p.uid == dir.uid) {
            Some(p) if p.created <= t => Lookup::Known(JobIdentity {
                job: self.jobs[p.job].name.to_string(),
                job_uid: Some(self.jobs[p.job].uid.clone()),
                cronjob: None,
                completion_index: None,
                attempt: Some(p.attempt),
            }),
            _ => Lookup::Unknown,
        }
    }
}

impl PodObjects for DemoCluster {
    fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
        let t = self.time();
        let p = self.pods.iter().find(|p| p.uid == uid)?;
        self.pod_object(p, t).map(Arc::new)
    }
}

impl ClusterRecords for DemoCluster {
    fn events(
        &self,
        _namespace: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<Vec<Event>, RecordsError>> {
        let t = self.time();
        let events: Vec<Event> = self
            .events
            .iter()
            .filter(|e| e.object.2 == uid)
            .filter_map(|e| self.event_object(e, t))
            .collect();
        Box::pin(async move { Ok(events) })
    }

    fn job(
        &self,
        _namespace: &str,
        _name: &str,
        uid: &str,
    ) -> BoxFuture<'static, Result<JobLookup, RecordsError>> {
        let t = self.time();
        let answer = self.jobs.iter().find(|j| j.uid == uid).map(|j| {
            match self.job_object(j, t) {
                Some(job) => JobLookup::Found(Box::new(job)),
                // What the agent saw before it was deleted.
                None => {
                    let seen = self.job_object(j, j.created);
                    JobLookup::Gone {
                        spec: seen.as_ref().map(JobSpecSummary::of),
                        created: Some(ts(j.created)),
                    }
                }
            }
        });
        let answer = answer.unwrap_or(JobLookup::Gone {
            spec: None,
            created: None,
        });
        Box::pin(async move { Ok(answer) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_objects_parse_as_api_objects() {
        let c = DemoCluster::seed();
        let t = T0 + 30;
        let pods: Vec<Pod> = c.pods.iter().filter_map(|p| c.pod_object(p, t)).collect();
        // exit-nonzero's first pod, invalid-secret and over-provisioned exist by then.
        assert_eq!(pods.len(), 3);
        let waiting = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some("invalid-secret-5st25"))
            .unwrap();
        let status = waiting.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let state = status.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap();
        assert_eq!(
            state.waiting.as_ref().unwrap().reason.as_deref(),
            Some("CreateContainerConfigError")
        );
        let events: Vec<Event> = c
            .events
            .iter()
            .filter_map(|e| c.event_object(e, END))
            .collect();
        assert_eq!(events.len(), c.events.len());
        let failed = events
            .iter()
            .find(|e| e.reason.as_deref() == Some("Failed"))
            .unwrap();
        // From 14:00:11 every 20 s until the deletion at 14:15:10.
        assert_eq!(failed.count, Some(45));
        assert!(c.jobs.iter().all(|j| c.job_object(j, j.created).is_some()));
    }

    #[test]
    fn the_exit_nonzero_job_fails_after_its_sixth_pod() {
        let c = DemoCluster::seed();
        let j = &c.jobs[0];
        let before = c.job_object(j, T0 + 501).unwrap();
        assert!(crate::postmortem::record::final_condition(&before).is_none());
        let after = c.job_object(j, T0 + 502).unwrap();
        let cond = crate::postmortem::record::final_condition(&after).unwrap();
        assert_eq!(cond.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(after.status.unwrap().failed, Some(6));
    }
}
