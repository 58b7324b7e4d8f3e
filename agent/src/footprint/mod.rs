//! Per-attempt resource footprints (CONTRACT §5): what one pod of a Job reserved on its node
//! (memory request × the time it held it) against what it actually used (cgroup v2 samples).
//!
//! The agent owns one [`AttemptTracker`] per pod: it feeds it pod objects from the API
//! ([`AttemptTracker::observe_pod`]), periodic cgroup samples ([`AttemptTracker::sample`]) and,
//! without the API, log-line times ([`AttemptTracker::observe_log_times`]); it ships
//! [`AttemptTracker::footprint`] while the pod lives and once more when [`AttemptTracker::is_final`].
//! The reading side turns stored [`Footprint`]s into a [`report::Report`] and an SVG plot.

pub mod cgroup;
pub mod plot;
pub mod recorder;
pub mod report;
pub mod timeline;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use cgroup::PodCgroups;
pub use plot::render_svg;
pub use report::{build_cronjob_report, build_report, Report};

/// One attempt's footprint document (CONTRACT §5). Fields after `samples` are extras; every field
/// defaults when absent so documents written by older agents still load in `report`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Footprint {
    pub job: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    pub namespace: String,
    pub attempt: u32,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub created: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millicores: Option<u64>,
    pub cpu_limit_millicores: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage_seconds: Option<f64>,
    pub reserved_memory_byte_seconds: Option<f64>,
    pub used_memory_byte_seconds: Option<f64>,
    pub waiting_seconds: Option<f64>,
    pub waiting_reason: Option<String>,
    /// `[unix_seconds, memory_bytes, cpu_usage_seconds]`, oldest first.
    pub samples: Vec<(f64, u64, f64)>,
    /// When the pod got its node (PodScheduled): the start of the time it holds its requests.
    pub scheduled: Option<String>,
    /// When the pod left the API, if it did before it terminated.
    pub deleted: Option<String>,
    /// When this document was built; the end of the reserved time while the pod still lives.
    pub updated: Option<String>,
    pub qos_class: Option<String>,
    /// OOM kills counted by the kernel in the pod's cgroup (`memory.events`).
    pub oom_kills: Option<u64>,
    /// `memory.peak` when the kernel has it, `samples` when the peak is the sampled maximum.
    pub memory_peak_source: Option<String>,
    pub containers: Vec<ContainerFootprint>,
    /// True once the pod has ended and a last sample was taken: the document will not change.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// One container of the attempt: its own requests and, where its cgroup scope was found, its use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerFootprint {
    /// Null without the API, where only the runtime's container id is known.
    pub name: Option<String>,
    pub container_id: Option<String>,
    pub init: bool,
    pub restarts: u32,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millicores: Option<u64>,
    pub cpu_limit_millicores: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage_seconds: Option<f64>,
}

impl Footprint {
    /// The interval during which the pod held its requests on the node, in unix seconds.
    /// Kept here rather than in the report so the plot and the report agree on it.
    pub fn held_interval(&self) -> Option<(f64, f64)> {
        let start = self
            .scheduled
            .as_deref()
            .or(self.created.as_deref())
            .or(self.started.as_deref())
            .and_then(parse_unix)?;
        let end = self.end_unix()?;
        Some((start, end.max(start)))
    }

    /// Seconds between the first container start and the end (or the last update while live).
    pub fn running_seconds(&self) -> Option<f64> {
        let start = self.started.as_deref().and_then(parse_unix)?;
        Some((self.end_unix()? - start).max(0.0))
    }

    /// When the attempt stopped holding anything: finished, else deleted, else (still alive)
    /// the moment the document was written.
    fn end_unix(&self) -> Option<f64> {
        self.finished
            .as_deref()
            .or(self.deleted.as_deref())
            .or(self.updated.as_deref())
            .and_then(parse_unix)
    }

    pub fn succeeded(&self) -> bool {
        match self.phase.as_deref() {
            Some(phase) => phase == "Succeeded",
            // Without the API only a clean exit code can tell.
            None => self.exit_code == Some(0),
        }
    }

    pub fn oom_killed(&self) -> bool {
        self.reason.as_deref() == Some("OOMKilled") || self.oom_kills.unwrap_or(0) > 0
    }
}

/// Identity of an attempt, known before any status (from the agent's metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptIdentity {
    pub job: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    pub namespace: String,
    pub attempt: u32,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
}

/// Accumulates one attempt's footprint while the pod lives.
#[derive(Debug)]
pub struct AttemptTracker {
    id: AttemptIdentity,
    timeline: timeline::Timeline,
    usage: cgroup::Sampler,
    last_sample_after_end: bool,
}

impl AttemptTracker {
    pub fn new(id: AttemptIdentity) -> Self {
        Self {
            id,
            timeline: timeline::Timeline::default(),
            usage: cgroup::Sampler::default(),
            last_sample_after_end: false,
        }
    }

    pub fn identity(&self) -> &AttemptIdentity {
        &self.id
    }

    /// Record the latest pod object: requests, limits, timestamps, phase, waiting and exit.
    /// An object of another pod (uid mismatch) is ignored rather than mixed into this attempt.
    pub fn observe_pod(&mut self, pod: &Pod, now_unix: f64) {
        if let Some(uid) = pod.metadata.uid.as_deref() {
            if !self.id.pod_uid.is_empty() && uid != self.id.pod_uid {
                return;
            }
        }
        self.timeline.observe(pod, now_unix);
    }

    /// Take one cgroup sample for this pod (no-op if its cgroup is not found).
    pub fn sample(&mut self, cgroups: &PodCgroups, now_unix: f64) {
        let ended = self.ended();
        // After the end the cgroup holds only leftovers (page cache, an idle sandbox): read it for
        // the final peak, CPU total and OOM count, but keep it out of the memory-over-time series.
        self.usage
            .sample(cgroups, &self.id.pod_uid, now_unix, !ended);
        if ended {
            self.last_sample_after_end = true;
        }
    }

    /// The pod was deleted from the API (or its folder vanished): stop reserved-time accounting.
    pub fn mark_deleted(&mut self, now_unix: f64) {
        self.timeline.mark_deleted(now_unix);
    }

    /// Without the API: timing from the first/last log line timestamps (RFC 3339 strings).
    pub fn observe_log_times(&mut self, first_ts: &str, last_ts: &str) {
        self.timeline.observe_log_times(first_ts, last_ts);
    }

    /// True once the pod terminated or was deleted and a sample was taken after that: the
    /// footprint will not change any more, so it can be shipped a last time and dropped.
    pub fn is_final(&self) -> bool {
        self.ended() && self.last_sample_after_end
    }

    fn ended(&self) -> bool {
        self.timeline.terminal() || self.timeline.deleted()
    }

    /// Build the document as of `now_unix`.
    pub fn footprint(&self, now_unix: f64) -> Footprint {
        let t = self.timeline.summary(now_unix);
        let u = &self.usage;
        let used_memory_byte_seconds = if u.has_samples() {
            Some(u.used_byte_seconds())
        } else if t.known_never_ran {
            // Nothing ran, so nothing was used; unknown would hide the waste the report flags.
            Some(0.0)
        } else {
            None
        };
        let id = self.id.clone();
        Footprint {
            job: id.job,
            job_uid: id.job_uid,
            cronjob: id.cronjob,
            namespace: id.namespace,
            attempt: id.attempt,
            pod: id.pod,
            pod_uid: id.pod_uid,
            node: id.node,
            phase: t.phase,
            reason: t.reason,
            exit_code: t.exit_code,
            created: t.created,
            started: t.started,
            finished: t.finished,
            memory_request_bytes: t.memory_request_bytes,
            memory_limit_bytes: t.memory_limit_bytes,
            cpu_request_millicores: t.cpu_request_millicores,
            cpu_limit_millicores: t.cpu_limit_millicores,
            memory_peak_bytes: u.peak_bytes(),
            cpu_usage_seconds: u.cpu_seconds(),
            reserved_memory_byte_seconds: t.reserved_memory_byte_seconds,
            used_memory_byte_seconds,
            waiting_seconds: t.waiting_seconds,
            waiting_reason: t.waiting_reason,
            samples: u.series().to_vec(),
            scheduled: t.scheduled,
            deleted: t.deleted,
            updated: Some(format_unix(now_unix)),
            qos_class: t.qos_class,
            oom_kills: u.oom_kills(),
            memory_peak_source: u.peak_source().map(str::to_string),
            containers: merge_containers(t.containers, u),
            is_final: self.is_final(),
        }
    }
}

/// Joins the API's view of the containers with the cgroup scopes by container id; without the
/// API every scope is listed by id alone (the pod sandbox's included, as nothing names it).
fn merge_containers(
    known: Vec<timeline::ContainerSummary>,
    usage: &cgroup::Sampler,
) -> Vec<ContainerFootprint> {
    if known.is_empty() {
        return usage
            .containers()
            .map(|(id, scope)| ContainerFootprint {
                container_id: Some(id.to_string()),
                memory_peak_bytes: scope.peak_bytes,
                cpu_usage_seconds: scope.cpu_seconds,
                ..ContainerFootprint::default()
            })
            .collect();
    }
    known
        .into_iter()
        .map(|summary| {
            let mut doc = summary.doc;
            // A restarted container has one scope per run: its use is the sum, its peak the max.
            for scope in summary.ids.iter().filter_map(|id| usage.container(id)) {
                doc.memory_peak_bytes = doc.memory_peak_bytes.max(scope.peak_bytes);
                if let Some(cpu) = scope.cpu_seconds {
                    doc.cpu_usage_seconds = Some(doc.cpu_usage_seconds.unwrap_or(0.0) + cpu);
                }
            }
            doc
        })
        .collect()
}

/// An instant as both a number (for arithmetic) and its RFC 3339 text (for the document):
/// the text is kept exact rather than rebuilt from the float, which cannot hold nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stamp {
    pub unix: f64,
    pub text: String,
}

impl Stamp {
    pub(crate) fn from_datetime(dt: OffsetDateTime) -> Option<Self> {
        let dt = dt.to_offset(time::UtcOffset::UTC);
        Some(Self {
            unix: dt.unix_timestamp_nanos() as f64 / 1e9,
            text: dt.format(&Rfc3339).ok()?,
        })
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::from_datetime(OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?)
    }

    pub(crate) fn from_unix(unix: f64) -> Self {
        Self {
            unix,
            text: format_unix(unix),
        }
    }
}

/// RFC 3339 in UTC, to the millisecond (finer would only show the float's noise).
pub(crate) fn format_unix(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub(crate) fn parse_unix(text: &str) -> Option<f64> {
    Stamp::parse(text).map(|s| s.unix)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Fixtures shared by the module's tests: pods shaped like real API objects and cgroup trees
    //! laid out as on a node.

    use super::*;
    use serde_json::{json, Value};
    use std::fs;
    use std::path::{Path, PathBuf};

    pub const GIB: u64 = 1 << 30;
    pub const MIB: u64 = 1 << 20;

    pub fn unix(text: &str) -> f64 {
        parse_unix(text).expect("test timestamp")
    }

    pub fn at(base: &str, offset: f64) -> String {
        format_unix(unix(base) + offset)
    }

    /// A Job pod as `GET /api/v1/pods` returns it (trimmed to the fields that matter here),
    /// following podlist-node-1-final.json.
    pub fn job_pod(job: &str, name: &str, uid: &str, created: &str, memory: &str) -> Value {
        json!({
            "metadata": {
                "name": name,
                "generateName": format!("{job}-"),
                "namespace": "default",
                "uid": uid,
                "resourceVersion": "284",
                "creationTimestamp": created,
                "labels": {"controller-uid": "c74a695f-59a4-4bc7-945a-6701f4c5bd60", "job-name": job},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job,
                    "uid": "c74a695f-59a4-4bc7-945a-6701f4c5bd60", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "containers": [{
                    "name": job, "image": "busybox",
                    "command": ["/bin/sh", "-c", "sleep 30 && exit 1"],
                    "resources": {"requests": {"memory": memory}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
                }],
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "nodeName": "node-1", "schedulerName": "default-scheduler"
            },
            "status": {"phase": "Pending", "qosClass": "Burstable"}
        })
    }

    fn condition(kind: &str, status: &str, at: &str) -> Value {
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": at})
    }

    fn container_status(name: &str, state: Value, id: Option<&str>) -> Value {
        let mut s = json!({
            "name": name, "state": state, "lastState": {}, "ready": false, "restartCount": 0,
            "image": "busybox",
            "imageID": "docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "started": false
        });
        if let Some(id) = id {
            s["containerID"] = json!(format!("containerd://{id}"));
        }
        s
    }

    /// The pod scheduled at `scheduled`, with its one container Waiting for `reason`.
    pub fn waiting(mut pod: Value, scheduled: &str, reason: &str) -> Pod {
        let name = pod["spec"]["containers"][0]["name"].clone();
        pod["status"]["conditions"] = json!([condition("PodScheduled", "True", scheduled)]);
        pod["status"]["startTime"] = json!(scheduled);
        pod["status"]["containerStatuses"] = json!([container_status(
            name.as_str().unwrap(),
            json!({"waiting": {"reason": reason, "message": "secret \"notpresent\" not found"}}),
            None
        )]);
        serde_json::from_value(pod).expect("pod json")
    }

    pub fn running(mut pod: Value, scheduled: &str, started: &str, id: &str) -> Pod {
        let name = pod["spec"]["containers"][0]["name"].clone();
        pod["status"]["phase"] = json!("Running");
        pod["status"]["conditions"] = json!([condition("PodScheduled", "True", scheduled)]);
        pod["status"]["startTime"] = json!(scheduled);
        pod["status"]["containerStatuses"] = json!([container_status(
            name.as_str().unwrap(),
            json!({"running": {"startedAt": started}}),
            Some(id)
        )]);
        serde_json::from_value(pod).expect("pod json")
    }

    pub fn terminated(
        mut pod: Value,
        scheduled: &str,
        started: &str,
        finished: &str,
        exit_code: i32,
        id: &str,
    ) -> Pod {
        let name = pod["spec"]["containers"][0]["name"].clone();
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        pod["status"]["phase"] = json!(if exit_code == 0 {
            "Succeeded"
        } else {
            "Failed"
        });
        pod["status"]["conditions"] = json!([
            condition("Initialized", "True", scheduled),
            condition("Ready", "False", finished),
            condition("PodScheduled", "True", scheduled)
        ]);
        pod["status"]["startTime"] = json!(scheduled);
        pod["status"]["containerStatuses"] = json!([container_status(
            name.as_str().unwrap(),
            json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                "finishedAt": finished, "containerID": format!("containerd://{id}")}}),
            Some(id)
        )]);
        serde_json::from_value(pod).expect("pod json")
    }

    pub fn container_id(n: u32) -> String {
        format!("{n:02x}{}", "ab".repeat(31))
    }

    pub fn pod_uid(n: u32) -> String {
        format!("f5d2a146-ed30-42ed-96d6-8cdba53b70{n:02x}")
    }

    pub fn identity(job: &str, attempt: u32, pod: &str, uid: &str) -> AttemptIdentity {
        AttemptIdentity {
            job: job.into(),
            job_uid: Some("c74a695f-59a4-4bc7-945a-6701f4c5bd60".into()),
            cronjob: None,
            namespace: "default".into(),
            attempt,
            pod: pod.into(),
            pod_uid: uid.into(),
            node: "node-1".into(),
        }
    }

    /// Where a pod's cgroup sits on a node, per cgroup driver and QoS class.
    #[derive(Clone, Copy, Debug)]
    pub enum Layout {
        Systemd(&'static str),
        Cgroupfs(&'static str),
    }

    /// Lays out a pod cgroup (and one container scope) under `root` as the kubelet and containerd
    /// do, and returns the pod and container directories.
    pub fn pod_cgroup(root: &Path, layout: Layout, uid: &str, id: &str) -> (PathBuf, PathBuf) {
        let underscored = uid.replace('-', "_");
        let (pod, container) = match layout {
            Layout::Systemd("guaranteed") => {
                let pod = root.join(format!("kubepods.slice/kubepods-pod{underscored}.slice"));
                (pod.clone(), pod.join(format!("cri-containerd-{id}.scope")))
            }
            Layout::Systemd(qos) => {
                let pod = root.join(format!(
                    "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{underscored}.slice"
                ));
                (pod.clone(), pod.join(format!("cri-containerd-{id}.scope")))
            }
            Layout::Cgroupfs("guaranteed") => {
                let pod = root.join(format!("kubepods/pod{uid}"));
                (pod.clone(), pod.join(id))
            }
            Layout::Cgroupfs(qos) => {
                let pod = root.join(format!("kubepods/{qos}/pod{uid}"));
                (pod.clone(), pod.join(id))
            }
        };
        fs::create_dir_all(&container).unwrap();
        (pod, container)
    }

    /// Writes the interface files the sampler reads, in the kernel's formats.
    pub fn write_usage(dir: &Path, memory: u64, usage_usec: u64, peak: Option<u64>, oom_kill: u64) {
        fs::write(dir.join("memory.current"), format!("{memory}\n")).unwrap();
        fs::write(
            dir.join("cpu.stat"),
            format!(
                "usage_usec {usage_usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                usage_usec * 2 / 3,
                usage_usec / 3
            ),
        )
        .unwrap();
        fs::write(
            dir.join("memory.events"),
            format!("low 0\nhigh 0\nmax {oom_kill}\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"),
        )
        .unwrap();
        match peak {
            Some(peak) => fs::write(dir.join("memory.peak"), format!("{peak}\n")).unwrap(),
            None => {
                let _ = fs::remove_file(dir.join("memory.peak"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    const T0: &str = "2026-11-27T14:53:43Z";

    #[test]
    fn stamps_keep_nanoseconds_and_normalise_offsets() {
        let s = Stamp::parse("2026-11-27T15:53:43.123456789+01:00").unwrap();
        assert_eq!(s.text, "2026-11-27T14:53:43.123456789Z");
        assert!((s.unix - unix(T0) - 0.123456789).abs() < 1e-6);
        assert!(Stamp::parse("yesterday").is_none());
        assert_eq!(format_unix(unix(T0) + 1.5), "2026-11-27T14:53:44.5Z");
    }

    #[test]
    fn exit_nonzero_attempt_holds_its_request_only_until_it_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = pod_uid(1);
        let cid = container_id(1);
        let json = job_pod("exit-nonzero", "exit-nonzero-szsld", &uid, T0, "1Gi");
        let mut t = AttemptTracker::new(identity("exit-nonzero", 1, "exit-nonzero-szsld", &uid));
        let (pod_dir, ctr_dir) = pod_cgroup(tmp.path(), Layout::Systemd("burstable"), &uid, &cid);

        t.observe_pod(
            &waiting(json.clone(), T0, "ContainerCreating"),
            unix(T0) + 0.5,
        );
        t.observe_pod(
            &running(json.clone(), T0, &at(T0, 1.0), &cid),
            unix(T0) + 1.2,
        );
        for (i, mem) in [300_000u64, 420_000, 380_000, 410_000].iter().enumerate() {
            let now = unix(T0) + 2.0 + 10.0 * i as f64;
            write_usage(&pod_dir, *mem, 1_000 * (i as u64 + 1), None, 0);
            write_usage(&ctr_dir, *mem - 200_000, 900 * (i as u64 + 1), None, 0);
            t.sample(&PodCgroups::new(tmp.path()), now);
        }
        assert!(!t.is_final());
        let done = terminated(json, T0, &at(T0, 1.0), &at(T0, 31.0), 1, &cid);
        t.observe_pod(&done, unix(T0) + 31.5);
        assert!(!t.is_final(), "final only after a last sample");
        write_usage(&pod_dir, 100_000, 4_500, Some(450_000), 0);
        t.sample(&PodCgroups::new(tmp.path()), unix(T0) + 33.0);
        assert!(t.is_final());

        let f = t.footprint(unix(T0) + 40.0);
        assert_eq!(f.phase.as_deref(), Some("Failed"));
        assert_eq!(f.reason.as_deref(), Some("Error"));
        assert_eq!(f.exit_code, Some(1));
        assert_eq!(f.created.as_deref(), Some(T0));
        assert_eq!(f.scheduled.as_deref(), Some(T0));
        assert_eq!(f.started.as_deref(), Some("2026-11-27T14:53:44Z"));
        assert_eq!(f.finished.as_deref(), Some("2026-11-27T14:54:14Z"));
        assert_eq!(f.memory_request_bytes, Some(GIB));
        assert_eq!(f.memory_limit_bytes, None);
        assert_eq!(f.cpu_request_millicores, None);
        // Held from scheduling to the container's finishedAt, not until `now`.
        assert_eq!(f.reserved_memory_byte_seconds, Some(31.0 * GIB as f64));
        // Trapezoids over the four running samples; the post-exit sample is not in the series.
        let used = 10.0
            * ((300_000.0 + 420_000.0) + (420_000.0 + 380_000.0) + (380_000.0 + 410_000.0))
            / 2.0;
        assert_eq!(f.used_memory_byte_seconds, Some(used));
        assert_eq!(f.samples.len(), 4);
        assert_eq!(f.samples[1], (unix(T0) + 12.0, 420_000, 0.002));
        assert_eq!(f.memory_peak_bytes, Some(450_000));
        assert_eq!(f.memory_peak_source.as_deref(), Some("memory.peak"));
        assert_eq!(f.cpu_usage_seconds, Some(0.0045));
        assert_eq!(f.oom_kills, Some(0));
        assert_eq!(f.waiting_seconds, Some(1.0));
        assert_eq!(f.waiting_reason.as_deref(), Some("ContainerCreating"));
        assert!(f.is_final);
        assert_eq!(f.containers.len(), 1);
        assert_eq!(f.containers[0].name.as_deref(), Some("exit-nonzero"));
        assert_eq!(f.containers[0].memory_peak_bytes, Some(220_000));
        assert_eq!(f.containers[0].exit_code, Some(1));

        let json = serde_json::to_value(&f).unwrap();
        for key in [
            "job",
            "job_uid",
            "cronjob",
            "namespace",
            "attempt",
            "pod",
            "pod_uid",
            "node",
            "phase",
            "reason",
            "exit_code",
            "created",
            "started",
            "finished",
            "memory_request_bytes",
            "memory_limit_bytes",
            "cpu_request_millicores",
            "cpu_limit_millicores",
            "memory_peak_bytes",
            "cpu_usage_seconds",
            "reserved_memory_byte_seconds",
            "used_memory_byte_seconds",
            "waiting_seconds",
            "waiting_reason",
            "samples",
            "final",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(
            json["samples"][0],
            serde_json::json!([unix(T0) + 2.0, 300_000, 0.001])
        );
        let back: Footprint = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn invalid_secret_attempt_holds_its_request_while_waiting() {
        let uid = pod_uid(2);
        let json = job_pod("invalid-secret", "invalid-secret-5st25", &uid, T0, "1Gi");
        let mut t =
            AttemptTracker::new(identity("invalid-secret", 1, "invalid-secret-5st25", &uid));
        let empty = tempfile::tempdir().unwrap();
        for minute in 0..4 {
            let now = unix(T0) + 2.0 + 60.0 * minute as f64;
            t.observe_pod(
                &waiting(json.clone(), T0, "CreateContainerConfigError"),
                now,
            );
            t.sample(&PodCgroups::new(empty.path()), now);
        }
        let early = t.footprint(unix(T0) + 60.0);
        let later = t.footprint(unix(T0) + 300.0);
        assert_eq!(early.reserved_memory_byte_seconds, Some(60.0 * GIB as f64));
        assert_eq!(later.reserved_memory_byte_seconds, Some(300.0 * GIB as f64));
        assert_eq!(later.waiting_seconds, Some(300.0));
        assert_eq!(
            later.waiting_reason.as_deref(),
            Some("CreateContainerConfigError")
        );
        assert_eq!(later.used_memory_byte_seconds, Some(0.0));
        assert_eq!(later.memory_peak_bytes, None);
        assert_eq!(later.phase.as_deref(), Some("Pending"));
        assert_eq!(later.started, None);
        assert!(!t.is_final());

        t.mark_deleted(unix(T0) + 400.0);
        t.mark_deleted(unix(T0) + 500.0);
        t.sample(&PodCgroups::new(empty.path()), unix(T0) + 401.0);
        assert!(t.is_final());
        let f = t.footprint(unix(T0) + 900.0);
        assert_eq!(f.reserved_memory_byte_seconds, Some(400.0 * GIB as f64));
        assert_eq!(f.waiting_seconds, Some(400.0));
        assert_eq!(f.deleted.as_deref(), Some("2026-11-27T15:00:23Z"));
        assert_eq!(f.finished, None);
    }

    #[test]
    fn without_the_api_timing_comes_from_log_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = pod_uid(3);
        let (pod_dir, ctr_dir) = pod_cgroup(
            tmp.path(),
            Layout::Cgroupfs("besteffort"),
            &uid,
            &container_id(3),
        );
        let mut t = AttemptTracker::new(identity("ttl-ok", 1, "ttl-ok-s5n25", &uid));
        write_usage(&pod_dir, 5 * MIB, 2_000_000, None, 0);
        write_usage(&ctr_dir, 4 * MIB, 1_900_000, None, 0);
        t.sample(&PodCgroups::new(tmp.path()), unix(T0));
        write_usage(&pod_dir, 7 * MIB, 3_000_000, None, 0);
        t.sample(&PodCgroups::new(tmp.path()), unix(T0) + 10.0);
        t.observe_log_times(
            "2026-11-27T14:53:40.000000001Z",
            "2026-11-27T14:54:00.5+00:00",
        );
        let f = t.footprint(unix(T0) + 20.0);
        assert_eq!(f.started.as_deref(), Some("2026-11-27T14:53:40.000000001Z"));
        assert_eq!(f.finished.as_deref(), Some("2026-11-27T14:54:00.5Z"));
        assert_eq!(f.memory_request_bytes, None);
        assert_eq!(f.memory_limit_bytes, None);
        assert_eq!(f.phase, None);
        assert_eq!(f.reserved_memory_byte_seconds, None);
        assert_eq!(f.waiting_seconds, None);
        assert_eq!(f.used_memory_byte_seconds, Some(60.0 * MIB as f64));
        assert_eq!(f.memory_peak_bytes, Some(7 * MIB));
        assert_eq!(f.memory_peak_source.as_deref(), Some("samples"));
        assert_eq!(f.cpu_usage_seconds, Some(3.0));
        // Without the API the container is known by its runtime id only.
        assert_eq!(f.containers.len(), 1);
        assert_eq!(f.containers[0].name, None);
        assert_eq!(f.containers[0].container_id, Some(container_id(3)));
        assert_eq!(f.containers[0].memory_peak_bytes, Some(4 * MIB));
        assert!(!t.is_final());
    }

    #[test]
    fn a_pod_of_another_uid_is_ignored() {
        let mut t = AttemptTracker::new(identity("j", 1, "j-abcde", &pod_uid(4)));
        let other = job_pod("j", "j-abcde", &pod_uid(5), T0, "1Gi");
        t.observe_pod(&waiting(other, T0, "ContainerCreating"), unix(T0));
        assert_eq!(t.footprint(unix(T0)).memory_request_bytes, None);
    }

    #[test]
    fn footprints_from_older_agents_still_load() {
        let f: Footprint = serde_json::from_str(
            r#"{"job":"j","namespace":"default","attempt":2,"pod":"j-x","pod_uid":"u","node":"n",
                "phase":"Failed","memory_request_bytes":1073741824,"samples":[[1.0,5,0.5]]}"#,
        )
        .unwrap();
        assert_eq!(f.attempt, 2);
        assert_eq!(f.samples, vec![(1.0, 5, 0.5)]);
        assert!(!f.is_final);
        assert_eq!(f.held_interval(), None);
    }
}
