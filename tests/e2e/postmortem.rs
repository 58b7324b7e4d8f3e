//! Post-mortem records end to end: the Kubernetes test API server (k8s_api/server.py) with a
//! scenario and the Events a cluster holds for it (k8s_api/events/: the recorded EventList where
//! it covers the scenario, kubelet- and scheduler-shaped Events elsewhere), the scenario's pods'
//! logs on a node, `jobarchive agent --kube=on`, then the `events/` and `jobs/` trees, the API
//! requests the agent made, and `jobarchive describe`.

use jobarchive_e2e::k8s::{objects, wait_until, write_pod_logs, KubeApi};
use jobarchive_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SEED_JOB_UID: &str = "c74a695f-59a4-4bc7-945a-6701f4c5bd60";

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap()
}

fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap()
}

/// The Events of an attempt as archived (`events/…/pod=P.ndjson.gz`).
fn archived_events(node: &Node, key: &str) -> Vec<Value> {
    let gz = node.get_object(key);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gzip NDJSON");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect()
}

fn reasons(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect()
}

fn job_record(node: &Node, job: &str, job_uid: &str) -> Value {
    let key = format!("jobs/cluster=default/namespace=default/job={job}/job_uid={job_uid}.json");
    serde_json::from_slice(&node.get_object(&key)).expect("job record")
}

fn events_key(job: &str, job_uid: &str, attempt: u64, pod: &str) -> String {
    format!("events/cluster=default/namespace=default/job={job}/job_uid={job_uid}/attempt={attempt}/pod={pod}.ndjson.gz")
}

fn describe(node: &Node, job: &str, format: &str) -> String {
    let out = run_expect(&mut node.cli(&["describe", job, "--format", format]), 0);
    String::from_utf8(out.stdout).unwrap()
}

fn drain(api: &KubeApi, node: &Node) -> String {
    let out = run_expect(api.agent(node).arg("--drain"), 0);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn seed_attempts_keep_their_events_and_the_job_its_final_record() {
    let api = KubeApi::start("seed-exit-nonzero");
    api.apply_events("seed-exit-nonzero");
    let node = Node::s3();
    let pods = api.pods();
    for pod in &pods {
        write_pod_logs(&node, pod, 3, "drained");
    }
    let summary = drain(&api, &node);
    assert!(
        summary.contains("wrote 6 footprints, 6 Events objects and 1 Job records"),
        "{summary}"
    );

    for pod in &pods {
        let attempt = api.expected(name(pod))["attempt"].as_u64().unwrap();
        let events = archived_events(
            &node,
            &events_key("exit-nonzero", SEED_JOB_UID, attempt, name(pod)),
        );
        assert_eq!(
            reasons(&events),
            ["Scheduled", "Pulled", "Created", "Started"]
        );
        for e in &events {
            assert_eq!(e["object_uid"], uid(pod));
            assert_eq!(e["count"], 1);
        }
        // The scheduler's Event has no first/last timestamps in core/v1: its eventTime counts.
        assert_eq!(events[0]["source"], "default-scheduler");
        assert!(events[0]["first_timestamp"]
            .as_str()
            .unwrap()
            .ends_with(".104021Z"));
        assert_eq!(events[2]["field_path"], "spec.containers{exit-nonzero}");
    }

    let record = job_record(&node, "exit-nonzero", SEED_JOB_UID);
    assert_eq!(record["source"], "api");
    assert_eq!(record["note"], Value::Null);
    assert_eq!(record["condition"]["type"], "Failed");
    assert_eq!(record["condition"]["reason"], "BackoffLimitExceeded");
    assert_eq!(record["condition"]["time"], "2026-11-27T15:02:01Z");
    assert_eq!(record["spec"]["backoff_limit"], 6);
    assert_eq!(record["spec"]["containers"][0]["requests"]["memory"], "1Gi");
    assert_eq!(record["status"]["failed"], 6);
    let job_reasons = reasons(record["events"].as_array().unwrap());
    assert_eq!(job_reasons.len(), 7);
    assert_eq!(job_reasons[6], "BackoffLimitExceeded");
    // Nothing of the node or of the time of writing in it: any node writes the same bytes.
    let text = record.to_string();
    assert!(!text.contains("node-1"), "{text}");

    // Events are asked for by involvedObject uid, in the object's namespace; nothing else.
    let mut listed = BTreeSet::new();
    for r in api.requests().iter().filter(|r| r["resource"] == "events") {
        assert_eq!(
            (r["verb"].as_str(), r["namespace"].as_str()),
            (Some("list"), Some("default")),
            "{r}"
        );
        let selector = r["query"]["fieldSelector"].as_str().unwrap();
        let uid = selector
            .strip_prefix("involvedObject.uid=")
            .expect("by uid");
        assert!(
            listed.insert(uid.to_string()),
            "one list per object in a drain: {r}"
        );
    }
    let mut expected: BTreeSet<String> = pods.iter().map(|p| uid(p).to_string()).collect();
    expected.insert(SEED_JOB_UID.into());
    assert_eq!(listed, expected);

    let text = describe(&node, "exit-nonzero", "text");
    for want in [
        "Condition:           Failed (BackoffLimitExceeded): Job has reached the specified backoff limit, at 15:02:01",
        "Backoff Limit:       6",
        "Pods Statuses:       0 Active / 0 Succeeded / 6 Failed",
        "Attempts:  6 (6 Failed), on node node-1",
        "Events:    31",
        "15:02:01  Warning  BackoffLimitExceeded  job",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let json: Value = serde_json::from_str(&describe(&node, "exit-nonzero", "json")).unwrap();
    let attempts = json["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 6);
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], i as u64 + 1);
        assert_eq!(
            (a["exit_code"].as_i64(), a["reason"].as_str()),
            (Some(1), Some("Error"))
        );
        assert_eq!(a["log_lines"], 3);
        assert_eq!(a["events"], 4);
    }
    // No cgroup tree on this test node: said, not left blank.
    assert_eq!(
        json["unknown"],
        json!(["memory and CPU used by attempts 1, 2, 3, 4, 5, 6: no cgroup sample was taken"])
    );
}

/// Stops the agent on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_event_gone_from_the_api_is_still_described() {
    let api = KubeApi::start("seed-over-provisioned");
    api.apply_events("seed-over-provisioned");
    let node = Node::local();
    let pod = api.pods().remove(0);
    write_pod_logs(&node, &pod, 2, "live");
    let config = node.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "rescan_interval_secs = 1\n[footprint]\nsample_interval_secs = 1\nwrite_interval_secs = 1\n[batch]\nmax_age_secs = 1\n",
    )
    .unwrap();
    let mut agent = Running(
        api.agent(&node)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let job_uid = api.expected(name(&pod))["jobUid"]
        .as_str()
        .unwrap()
        .to_string();
    let key = events_key("over-provisioned", &job_uid, 1, name(&pod));
    wait_until(
        "the running pod's Events archived",
        Duration::from_secs(30),
        || node.keys(&key) == [key.clone()],
    );
    assert_eq!(
        reasons(&archived_events(&node, &key)),
        ["Scheduled", "Pulled", "Created", "Started"]
    );

    // An hour later the API server has expired the scheduler's Event; then the pod completes
    // and the Job with it.
    let scheduled = KubeApi::events_of("seed-over-provisioned")["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "Scheduled")
        .cloned()
        .unwrap();
    api.post(
        "/_test/delete",
        &json!({"kind": "Event", "apiVersion": "v1", "name": name(&scheduled)}),
    );
    let mut done = pod.clone();
    let started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].clone();
    done["status"]["phase"] = json!("Succeeded");
    done["status"]["containerStatuses"][0]["state"] = json!({"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": started,
        "finishedAt": "2026-11-27T16:06:03Z",
        "containerID": pod["status"]["containerStatuses"][0]["containerID"]}});
    done["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let mut job = objects(&api.get("/_test/scenario")["objects"], "Job").remove(0);
    job["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    job["status"] = json!({"startTime": "2026-11-27T15:06:00Z", "succeeded": 1,
        "completionTime": "2026-11-27T16:06:04Z", "uncountedTerminatedPods": {},
        "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": "2026-11-27T16:06:04Z",
                        "lastTransitionTime": "2026-11-27T16:06:04Z"}]});
    let completed = json!({"kind": "Event", "apiVersion": "v1",
        "metadata": {"name": "over-provisioned.18ec0a1b2c3d4e5f", "namespace": "default",
                     "uid": "9d6b1c44-8d8e-4a57-9b0e-2f3c4d5e6f70",
                     "creationTimestamp": "2026-11-27T16:06:04Z"},
        "involvedObject": {"kind": "Job", "namespace": "default", "name": "over-provisioned",
                           "uid": job_uid, "apiVersion": "batch/v1"},
        "reason": "Completed", "message": "Job completed",
        "source": {"component": "job-controller"}, "firstTimestamp": "2026-11-27T16:06:04Z",
        "lastTimestamp": "2026-11-27T16:06:04Z", "count": 1, "type": "Normal",
        "eventTime": null, "reportingComponent": "", "reportingInstance": ""});
    api.post(
        "/_test/apply",
        &json!({"kind": "List", "items": [job, completed, done]}),
    );

    let record_key = format!(
        "jobs/cluster=default/namespace=default/job=over-provisioned/job_uid={job_uid}.json"
    );
    wait_until("the Job's record", Duration::from_secs(30), || {
        node.keys(&record_key) == [record_key.clone()]
    });
    assert_eq!(
        reasons(&archived_events(&node, &key)),
        ["Scheduled", "Pulled", "Created", "Started"],
        "the expired Event stays in the archive"
    );
    let record = job_record(&node, "over-provisioned", &job_uid);
    assert_eq!(record["condition"]["type"], "Complete");
    assert_eq!(
        reasons(record["events"].as_array().unwrap()),
        ["SuccessfulCreate", "Completed"]
    );

    let text = describe(&node, "over-provisioned", "text");
    assert!(
        text.contains("Successfully assigned default/over-provisioned-"),
        "the expired Scheduled Event is described:\n{text}"
    );
    assert!(text.contains("Condition:           Complete"), "{text}");
    let pid = agent.0.id().to_string();
    run_expect(Command::new("kill").args(["-TERM", &pid]), 0);
    assert_eq!(agent.0.wait().unwrap().code(), Some(0));
}

#[test]
fn a_job_deleted_before_its_pods_logs_were_shipped_is_recorded_from_its_events() {
    // cron-fail-29929854 was deleted by the CronJob's history limit (its recorded Events remain);
    // its pod's log is still on the node, shipped only now.
    let api = KubeApi::start("cronjob");
    api.apply_events("cronjob");
    let node = Node::local();
    for pod in api.pods() {
        write_pod_logs(&node, &pod, 2, "late");
    }
    drain(&api, &node);

    let gone = job_record(
        &node,
        "cron-fail-29929854",
        "e4042944-47ff-4b49-8851-90c2592c1ba8",
    );
    assert_eq!(gone["source"], "gone");
    assert_eq!(gone["cronjob"], "cron-fail");
    assert_eq!(gone["spec"], Value::Null, "the agent never saw the Job");
    assert_eq!(gone["condition"]["reason"], "BackoffLimitExceeded");
    assert_eq!(gone["condition"]["from"], "events");
    assert_eq!(gone["condition"]["time"], "2026-11-27T14:54:04Z");
    // The recorded Events, as the API server had them.
    let uids: Vec<&str> = gone["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        uids,
        [
            "3cb58cdb-752d-4f08-baea-7f7fc1f1659d",
            "bbc7489b-8071-43bb-84ec-41aec618a599"
        ]
    );
    assert!(gone["note"]
        .as_str()
        .unwrap()
        .contains("left the Kubernetes API"));

    let kept = job_record(
        &node,
        "cron-fail-29929855",
        "e85a3318-9f6c-4691-b4e1-c62d7c90042f",
    );
    assert_eq!(
        (kept["source"].as_str(), kept["cronjob"].as_str()),
        (Some("api"), Some("cron-fail"))
    );
    assert_eq!(kept["spec"]["backoff_limit"], 0);

    let text = describe(&node, "cron-fail-29929854", "text");
    for want in [
        "CronJob:    cron-fail",
        "Condition:  Failed (BackoffLimitExceeded): Job has reached the specified backoff limit, at 14:54:04 [from the Job's Events]",
        "Record:     written after the Job left the API (see Unknown)",
        "its spec, status and counts are unknown",
        "Started container report",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

#[test]
fn two_nodes_write_the_same_job_record() {
    let api = KubeApi::start("seed-exit-nonzero");
    api.apply_events("seed-exit-nonzero");
    let first = Node::s3();
    let mut second = Node::local();
    second.store = first.store.clone();
    // The Job's six pods ran on two nodes.
    for (i, pod) in api.pods().iter().enumerate() {
        write_pod_logs(if i < 3 { &first } else { &second }, pod, 2, "split");
    }
    let one = drain(&api, &first);
    assert!(one.contains("and 1 Job records"), "{one}");
    let key = format!(
        "jobs/cluster=default/namespace=default/job=exit-nonzero/job_uid={SEED_JOB_UID}.json"
    );
    let written = first.get_object(&key);

    let out = run_expect(api.agent_as(&second, "node-2").arg("--drain"), 0);
    let two = String::from_utf8_lossy(&out.stderr);
    assert!(
        two.contains("3 Events objects and 0 Job records"),
        "same bytes, not written again: {two}"
    );
    assert_eq!(second.get_object(&key), written);
    // Each node wrote its own attempts' Events and footprints.
    let nodes: BTreeSet<String> = second
        .keys("footprints/")
        .iter()
        .map(|k| {
            let doc: Value = serde_json::from_slice(&second.get_object(k)).unwrap();
            doc["node"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["node-1".to_string(), "node-2".to_string()])
    );
    assert_eq!(second.keys("events/").len(), 6);
}

#[test]
fn events_of_a_pod_no_job_owns_are_never_stored() {
    let api = KubeApi::start("bare-pod");
    api.apply_events("bare-pod");
    let node = Node::local();
    for pod in api.pods() {
        write_pod_logs(&node, &pod, 2, "bare");
    }
    drain(&api, &node);
    assert!(node.keys("events/").is_empty());
    assert!(node.keys("jobs/").is_empty());
    let asked: Vec<Value> = api
        .requests()
        .into_iter()
        .filter(|r| r["resource"] == "events")
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
}

#[test]
fn a_path_only_archive_is_described_with_what_is_unknown() {
    let node = Node::local();
    node.pod("default", "exit-nonzero-szsld", "uid-1").append(
        "exit-nonzero",
        0,
        &["starting".to_string(), "exit 1".to_string()],
    );
    node.drain();
    assert!(node.keys("events/").is_empty() && node.keys("jobs/").is_empty());
    let text = describe(&node, "exit-nonzero", "text");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} in\n{text}"))
            .to_string()
    };
    assert!(line("Job UID:").ends_with(" unknown"), "{text}");
    assert!(line("Condition:").ends_with(" unknown"), "{text}");
    assert!(line("Record:").ends_with("none (see Unknown)"), "{text}");
    assert!(text.contains("Events:    <none archived>"), "{text}");
    assert!(
        text.contains("the agent ran without the Kubernetes API (job_uid unknown)"),
        "{text}"
    );
    // The attempt is still there, from its manifest and footprint.
    assert!(text.contains("exit-nonzero-szsld"), "{text}");
}
