//! A job's whole life end to end: what a long-running pod costs the bucket (requests and bytes,
//! counted by a proxy in front of the S3 server), how much a pod with thousands of batches keeps
//! and rewrites, and exactly-once delivery across kubelet rotations while the agent is down,
//! a kill -9 in the middle of a file and a pod with several containers.

use jobarchive_e2e::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lines(tag: &str, from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("{tag} line {i}")).collect()
}

/// Messages of the records read straight from the store, per container, in offset order; and
/// whether any (container, restart, offset) appears twice.
fn stored(node: &Node) -> (BTreeMap<String, Vec<String>>, usize) {
    let mut by_stream: BTreeMap<(String, u64, u64), String> = BTreeMap::new();
    let mut twice = 0;
    for r in node.stored_records() {
        let key = (
            r["container"].as_str().unwrap().to_string(),
            r["restart"].as_u64().unwrap(),
            r["offset"].as_u64().unwrap(),
        );
        if by_stream
            .insert(key, r["message"].as_str().unwrap().to_string())
            .is_some()
        {
            twice += 1;
        }
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((container, _, _), message) in by_stream {
        out.entry(container).or_default().push(message);
    }
    (out, twice)
}

fn verify_output(node: &Node, job: &str) -> (Option<i32>, String) {
    let out = node.cli(&["verify", job]).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// A running agent, killed if the test fails before it stops it (no agent outlives its test).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(node: &Node, config: &str) -> (Agent, u16) {
    let (child, port) = node.start_agent(config);
    (Agent(child), port)
}

fn kill9(agent: &mut Agent) {
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
}

fn stop(agent: &mut Agent) {
    signal(agent.0.id(), "TERM");
    agent.0.wait().unwrap();
}

/// The manifest head of the only attempt of `job`.
fn head(node: &Node, job: &str) -> Value {
    let keys: Vec<String> = node
        .keys("manifests/")
        .into_iter()
        .filter(|k| k.contains(&format!("/job={job}/")))
        .collect();
    assert_eq!(keys.len(), 1, "one head: {keys:?}");
    serde_json::from_slice(&node.get_object(&keys[0])).unwrap()
}

fn all_complete(node: &Node, job: &str) -> bool {
    let keys: Vec<String> = node
        .keys("manifests/")
        .into_iter()
        .filter(|k| k.contains(&format!("/job={job}/")))
        .collect();
    !keys.is_empty()
        && keys.iter().all(|k| {
            let h: Value = serde_json::from_slice(&node.get_object(k)).unwrap();
            h["containers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["complete"] == true)
        })
}

/// The default timing, every interval a tenth (quiet is as short as it goes): a steady pod
/// logging for 15 s here costs what one logging for 150 s costs at the defaults.
const DEFAULTS_SCALED: &str = "rescan_interval_secs = 1\n\
[batch]\nmax_age_secs = 6\nquiet_secs = 1\nmanifest_interval_secs = 6\n\
[footprint]\nsample_interval_secs = 1\nwrite_interval_secs = 6\n";

#[test]
fn steady_logging_costs_a_few_puts_and_lands_soon_after_it_stops() {
    let proxy = CountingProxy::start(&std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT"));
    let mut node = Node::s3();
    node.endpoint = Some(proxy.endpoint.clone());
    let (mut agent, port) = start(&node, DEFAULTS_SCALED);
    let pod = node.pod("default", "steady-29929854-x7k2p", "uid-steady");
    let mut written = Vec::new();
    let began = Instant::now();
    let mut i = 0;
    while began.elapsed() < Duration::from_secs(15) {
        let batch = lines("steady", i, i + 10);
        pod.append("main", 0, &batch);
        written.extend(batch);
        i += 10;
        std::thread::sleep(Duration::from_millis(250));
    }
    let quiet = Instant::now();
    eventually("every line is fetchable once the pod is quiet", || {
        fetched(&node, "steady-29929854") == written
    });
    eprintln!(
        "fetchable {:.1} s after the last line",
        quiet.elapsed().as_secs_f64()
    );
    // The pod ends: its folder goes, the last manifest and footprint are written.
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("the attempt is complete", || {
        all_complete(&node, "steady-29929854")
    });
    stop(&mut agent);
    let logs = proxy.puts("logs");
    let manifests = (
        proxy.puts("manifests").0 + proxy.puts("manifest-parts").0,
        proxy.puts("manifests").1 + proxy.puts("manifest-parts").1,
    );
    let footprints = proxy.puts("footprints");
    eprintln!(
        "PUTs (count, bytes): logs {logs:?}, manifests {manifests:?}, footprints {footprints:?}"
    );
    let total = logs.0 + manifests.0 + footprints.0;
    assert!(
        logs.0 <= 4,
        "one object per max_age of steady logging: {logs:?}"
    );
    assert!(
        manifests.0 <= 6,
        "a part and a head per manifest write: {manifests:?}"
    );
    assert!(total <= 16, "{total} PUTs for one steady pod");
    // The agent's own count matches what the proxy saw (every PUT it sent, by class).
    let _ = port;
    let (code, out) = verify_output(&node, "steady-29929854");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("complete"), "{out}");
}

#[test]
fn puts_by_class_on_metrics_match_what_the_store_received() {
    let proxy = CountingProxy::start(&std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT"));
    let mut node = Node::s3();
    node.endpoint = Some(proxy.endpoint.clone());
    let (mut agent, port) = start(&node, DEFAULTS_SCALED);
    let pod = node.pod("default", "counted-29929854-x7k2p", "uid-counted");
    pod.append("main", 0, &lines("counted", 0, 50));
    eventually("the first batch lands", || {
        proxy.puts("logs").0 >= 1 && proxy.puts("manifests").0 >= 1
    });
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("the attempt is complete", || {
        all_complete(&node, "counted-29929854")
    });
    let body = http_get(port, "/metrics").unwrap().1;
    let class = |c: &str| {
        let series = format!("jobarchive_store_puts_total{{class=\"{c}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0) as usize
    };
    let parts = proxy.puts("manifests").0 + proxy.puts("manifest-parts").0;
    assert_eq!(class("logs"), proxy.puts("logs").0, "{body}");
    assert_eq!(class("manifests"), parts, "{body}");
    assert_eq!(class("footprints"), proxy.puts("footprints").0, "{body}");
    stop(&mut agent);
}

/// PUT requests and bytes of a class so far, from the agent's /metrics.
fn puts_of(port: u16, class: &str) -> (f64, f64) {
    let body = http_get(port, "/metrics").map(|r| r.1).unwrap_or_default();
    let value = |series: &str| {
        let prefix = format!("{series}{{class=\"{class}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    (
        value("jobarchive_store_puts_total"),
        value("jobarchive_store_put_bytes_total"),
    )
}

#[test]
fn thousands_of_batches_keep_state_and_manifest_writes_bounded() {
    let node = Node::local();
    // Batches of about four records and a manifest write every second: history piles up fast.
    let (mut agent, port) = start(
        &node,
        "[batch]\nmax_bytes = 1024\nmax_age_secs = 1\nquiet_secs = 1\nmanifest_interval_secs = 1\n",
    );
    let pod = node.pod("default", "long-29929854-x7k2p", "uid-long");
    let state = node.state_dir().join("pods/uid-long.json");
    let mut written = Vec::new();
    // Per round: the state file's size, the log objects and the manifest bytes PUT that round.
    let mut rounds = Vec::new();
    let mut before = (puts_of(port, "logs").0, puts_of(port, "manifests").1);
    for round in 0..5 {
        let batch = lines(&format!("round {round} of a long job"), 0, 2400);
        pod.append("main", 0, &batch);
        written.extend(batch);
        eventually("the round is shipped", || {
            agent_metric(port, "jobarchive_shipped_records_total") == written.len() as f64
        });
        let after = (puts_of(port, "logs").0, puts_of(port, "manifests").1);
        let size = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
        rounds.push((size, after.0 - before.0, after.1 - before.1));
        before = after;
    }
    eventually("every line is fetchable", || {
        fetched(&node, "long-29929854").len() == written.len()
    });
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("the attempt is complete", || {
        all_complete(&node, "long-29929854")
    });
    stop(&mut agent);
    let objects = node.keys("logs/").len();
    eprintln!(
        "{objects} objects; per round (state file bytes, log objects, manifest bytes): {rounds:?}"
    );
    assert!(objects >= 2000, "{objects} log objects");
    // What the agent keeps per pod does not grow with its history: at most a part's worth of
    // waiting lines (256 of about 350 bytes).
    for (size, _, _) in &rounds {
        assert!(*size < 128 * 1024, "state file of {size} bytes: {rounds:?}");
    }
    // Nor does what the manifest costs per batch: manifest bytes PUT per log object in the last
    // round are those of the first, though the pod then has five times the history (a manifest
    // rewritten whole would cost five times as much).
    let per_object = |r: &(u64, f64, f64)| r.2 / r.1.max(1.0);
    let (first, last) = (per_object(&rounds[0]), per_object(&rounds[4]));
    assert!(
        last < first * 1.5,
        "manifest bytes per log object grew: {first:.0} -> {last:.0}: {rounds:?}"
    );
    let h = head(&node, "long-29929854");
    let c = &h["containers"][0];
    assert_eq!(c["object_count"].as_u64().unwrap() as usize, objects);
    assert!(
        node.keys("manifests/")[0].len() < 300,
        "one head per attempt"
    );
    let heads_bytes = node.get_object(&node.keys("manifests/")[0]).len();
    assert!(heads_bytes < 2048, "a head of {heads_bytes} bytes");
    let parts = node.keys("manifest-parts/");
    assert_eq!(parts.len() as u64, c["parts"].as_u64().unwrap());
    for key in &parts {
        let body = node.get_object(key);
        let n = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert!(n <= 256, "{key}: {n} lines");
    }
    let (code, out) = verify_output(&node, "long-29929854");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("complete"), "{out}");
    let (by_container, twice) = stored(&node);
    assert_eq!(twice, 0);
    assert_eq!(by_container["main"], written);
}

#[test]
fn rotations_while_the_agent_is_down_lose_and_duplicate_nothing() {
    let node = Node::local();
    let config = "rescan_interval_secs = 1\n[batch]\nmax_age_secs = 1\nquiet_secs = 1\n";
    let (mut agent, _) = start(&node, config);
    let pod = node.pod("default", "rotating-29929854-x7k2p", "uid-rot");
    let mut written = lines("before", 0, 300);
    pod.append("main", 0, &written);
    eventually("the first lines are shipped", || {
        fetched(&node, "rotating-29929854").len() == 300
    });
    // One rotation followed live.
    pod.rotate_compressing("main", 0);
    let live = lines("after a live rotation", 0, 300);
    pod.append("main", 0, &live);
    written.extend(live);
    eventually("the lines after the live rotation are shipped", || {
        fetched(&node, "rotating-29929854").len() == 600
    });
    // Lines the agent will not have read when it dies, in the middle of the file.
    let unread = lines("written as the agent dies", 0, 400);
    pod.append("main", 0, &unread);
    written.extend(unread);
    kill9(&mut agent);
    // Down: the kubelet rotates twice, compressing; the file the checkpoint names is now
    // only a .gz with another inode and name.
    for round in 0..2 {
        pod.rotate_compressing("main", 0);
        let more = lines(&format!("while down, rotation {round}"), 0, 350);
        pod.append("main", 0, &more);
        written.extend(more);
    }
    let gz = std::fs::read_dir(pod.path.join("main"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".gz")
        })
        .count();
    assert_eq!(gz, 2, "two rotated files compressed");
    let (mut agent, _) = start(&node, config);
    let last = lines("after the restart", 0, 100);
    pod.append("main", 0, &last);
    written.extend(last);
    eventually("every line is fetchable", || {
        fetched(&node, "rotating-29929854").len() >= written.len()
    });
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("the attempt is complete", || {
        all_complete(&node, "rotating-29929854")
    });
    stop(&mut agent);
    let (by_container, twice) = stored(&node);
    assert_eq!(twice, 0, "no line stored twice");
    assert_eq!(by_container["main"], written, "every line, in order");
    let (code, out) = verify_output(&node, "rotating-29929854");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("complete"), "{out}");
}

#[test]
fn a_file_deleted_while_the_agent_is_down_is_a_gap_that_verify_names() {
    let node = Node::local();
    let config = "rescan_interval_secs = 1\n[batch]\nmax_age_secs = 1\nquiet_secs = 1\n";
    let (mut agent, _) = start(&node, config);
    let pod = node.pod("default", "lossy-29929854-x7k2p", "uid-lossy");
    pod.append("main", 0, &lines("shipped", 0, 100));
    eventually("the first lines are shipped", || {
        fetched(&node, "lossy-29929854").len() == 100
    });
    pod.append("main", 0, &lines("lost with its file", 0, 50));
    kill9(&mut agent);
    pod.rotate_compressing("main", 0);
    pod.append("main", 0, &lines("kept", 0, 60));
    pod.rotate_compressing("main", 0);
    // The kubelet's max-files limit: the oldest rotated file (the checkpointed one) goes.
    let mut rotated: Vec<_> = std::fs::read_dir(pod.path.join("main"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".gz"))
        .collect();
    rotated.sort();
    std::fs::remove_file(&rotated[0]).unwrap();
    pod.append("main", 0, &lines("after", 0, 40));
    let (mut agent, _) = start(&node, config);
    eventually("what is left is fetchable", || {
        fetched(&node, "lossy-29929854").len() == 200
    });
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("the stream is closed", || {
        all_complete(&node, "lossy-29929854")
    });
    stop(&mut agent);
    let (code, out) = verify_output(&node, "lossy-29929854");
    assert_eq!(code, Some(0), "an incomplete attempt is no mismatch: {out}");
    assert!(out.starts_with("incomplete"), "{out}");
    assert!(out.contains("gap:") && out.contains("deleted"), "{out}");
    let h = head(&node, "lossy-29929854");
    assert_eq!(h["containers"][0]["gaps"].as_array().unwrap().len(), 1);
}

#[test]
fn a_pod_with_several_containers_survives_kill_9_with_every_line_once() {
    let node = Node::local();
    let config = "rescan_interval_secs = 1\n[batch]\nmax_bytes = 4096\nmax_age_secs = 1\nquiet_secs = 1\nmanifest_interval_secs = 1\n";
    let pod = Arc::new(node.pod("default", "multi-29929854-x7k2p", "uid-multi"));
    let containers = ["main", "sidecar", "init-data"];
    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = containers
        .iter()
        .map(|c| {
            let (pod, running, c) = (pod.clone(), running.clone(), c.to_string());
            std::thread::spawn(move || {
                let mut written = Vec::new();
                let mut i = 0;
                while running.load(Ordering::Relaxed) {
                    let batch = lines(&c, i, i + 20);
                    pod.append(&c, 0, &batch);
                    written.extend(batch);
                    i += 20;
                    std::thread::sleep(Duration::from_millis(20));
                }
                (c, written)
            })
        })
        .collect();
    for _ in 0..3 {
        let (mut agent, _) = start(&node, config);
        std::thread::sleep(Duration::from_millis(2500));
        kill9(&mut agent);
    }
    running.store(false, Ordering::Relaxed);
    let written: HashMap<String, Vec<String>> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let (mut agent, _) = start(&node, config);
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("every stream is complete", || {
        all_complete(&node, "multi-29929854")
    });
    stop(&mut agent);
    let (by_container, twice) = stored(&node);
    assert_eq!(twice, 0, "no record stored twice");
    for c in containers {
        assert_eq!(by_container[c], written[c], "container {c}");
    }
    let (code, out) = verify_output(&node, "multi-29929854");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("complete"), "{out}");
}
