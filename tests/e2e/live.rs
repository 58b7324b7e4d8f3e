//! The long-running agent: pods deleted while it follows them, `kill -9` at random moments
//! while a writer appends, SIGTERM flushing open batches. Every line must arrive exactly once.

use jobarchive_e2e::*;
use std::process::{Child, Stdio};
use std::time::Duration;

fn start(node: &Node) -> Child {
    node.agent()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent")
}

fn sigterm(child: &mut Child) {
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "agent exits 0 after SIGTERM");
}

#[test]
fn pod_deleted_right_after_its_last_lines_loses_nothing() {
    let node = Node::local();
    let (mut agent, port) = node.start_agent("");
    let pod = node.pod("default", "cron-fail-29929854-64rlg", "uid-del");
    let msgs: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    pod.append("main", 0, &msgs[..200]);
    let log = pod.log_path("main", 0);
    eventually("the agent follows the log file", || {
        follows(&agent, port, &log, 1)
    });
    // The last lines, then the CronJob history limit fires and the kubelet deletes the pod
    // folder before the agent could read them: they are read through its open descriptor.
    pod.append("main", 0, &msgs[200..]);
    std::fs::remove_dir_all(&pod.path).unwrap();
    eventually("all 300 lines of the deleted pod in the store", || {
        fetched(&node, "cron-fail-29929854") == msgs
    });
    let manifest = find_manifest(&node, "cron-fail-29929854");
    assert_eq!(
        manifest["containers"][0]["complete"], true,
        "stream ended with its file: complete"
    );
    assert_eq!(manifest["cronjob"], "cron-fail");
    sigterm(&mut agent);
}

#[test]
fn sigterm_flushes_open_batches() {
    let node = Node::local();
    let mut agent = start(&node);
    let pod = node.pod("default", "flush-x7k2p", "uid-f");
    let msgs: Vec<String> = (0..50).map(|i| format!("before stop {i}")).collect();
    pod.append("c", 0, &msgs);
    // Wait until the agent has read them (its state dir shows it knows the pod), then stop it
    // well before the batch age limit: the open batch must be shipped on the way out.
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&mut agent);
    assert_eq!(fetched(&node, "flush"), msgs);
}

#[test]
fn kill_9_at_random_moments_never_loses_or_duplicates() {
    let node = Node::s3();
    let pod = node.pod("default", "crashy-x7k2p", "uid-k");
    let mut written = Vec::new();
    let mut seed = 0x2545_f491_u64;
    for cycle in 0..8 {
        let mut agent = start(&node);
        for burst in 0..5 {
            let lines: Vec<String> = (0..200)
                .map(|i| format!("cycle {cycle} burst {burst} line {i}"))
                .collect();
            pod.append("c", 0, &lines);
            written.extend(lines);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_millis(seed % 150));
        }
        signal(agent.id(), "KILL");
        let _ = agent.wait();
    }
    node.drain();
    let got = fetched(&node, "crashy");
    assert_eq!(got.len(), written.len(), "no line lost, none duplicated");
    assert_eq!(got, written);
}

/// Every file under `dir` (none when it does not exist yet).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

fn find_manifest(node: &Node, job: &str) -> serde_json::Value {
    let root = std::path::Path::new(&node.store).join("manifests");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(&format!("job={job}/")) {
                return serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            }
        }
    }
    panic!("no manifest for {job}");
}

#[test]
fn health_readiness_and_metrics_over_http() {
    let node = Node::local();
    let (mut agent, port) = node.start_agent("[batch]\nmax_age_secs = 1\n");
    let pod = node.pod("default", "metrics-x7k2p", "uid-m");
    let msgs: Vec<String> = (0..120).map(|i| format!("metric line {i}")).collect();
    pod.append("c", 0, &msgs);
    pod.append_raw("c", 0, b"not a CRI line\n");
    eventually("120 records shipped per /metrics", || {
        http_get(port, "/metrics")
            .is_some_and(|(_, body)| metric(&body, "jobarchive_shipped_records_total") == 120.0)
    });
    // And their pod's manifest head, written after them: nothing more goes to the store until
    // new lines come, so the folder can be taken away below without a write racing the
    // removal (the write would make the folder again: a run failed with ENOTEMPTY here).
    eventually("the pod's manifest head in the store", || {
        walk_files(&std::path::Path::new(&node.store).join("manifests"))
            .iter()
            .any(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                p.to_string_lossy().contains("job=metrics/") && name.ends_with(".json")
            })
    });
    let (status, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(metric(&body, "jobarchive_read_lines_total"), 121.0);
    assert_eq!(metric(&body, "jobarchive_parse_errors_total"), 1.0);
    assert_eq!(metric(&body, "jobarchive_files_open"), 1.0);
    assert_eq!(metric(&body, "jobarchive_pods_tracked"), 1.0);
    assert!(metric(&body, "jobarchive_shipped_objects_total") >= 1.0);
    assert!(body.contains("# TYPE jobarchive_read_bytes_total counter"));
    assert_eq!(http_get(port, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(port, "/readyz").unwrap().0, 200);
    // The store folder disappears: not ready any more, still healthy.
    std::fs::remove_dir_all(&node.store).unwrap();
    assert_eq!(http_get(port, "/readyz").unwrap().0, 503);
    assert_eq!(http_get(port, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(port, "/nope").unwrap().0, 404);
    sigterm(&mut agent);
}

#[test]
fn many_streams_over_the_memory_budget_are_squeezed_not_cut() {
    // 120 pods hold ~29 MB of lines, more than the 16 MiB the agent keeps in open batches.
    // Over the budget it compresses the oldest batches in memory and keeps them open, so the
    // lines each pod writes next join the same batch: one object per stream in the end (an
    // agent that closed batches to free memory ships two for some), every line exactly once.
    let node = Node::local();
    let pods = 120;
    let pad = "x".repeat(200);
    let mut logs = Vec::new();
    let mut written = Vec::new();
    for p in 0..pods {
        // A generated pod-name suffix (consonants), so the pods are attempts of Job `squeeze`.
        let suffix: String = format!("{p:05}")
            .bytes()
            .map(|d| b"bcdfghjklm"[usize::from(d - b'0')] as char)
            .collect();
        let pod = node.pod("default", &format!("squeeze-{suffix}"), &format!("uid-{p}"));
        let msgs: Vec<String> = (0..1000)
            .map(|i| format!("pod {p} line {i} {pad}"))
            .collect();
        pod.append("c", 0, &msgs);
        written.extend(msgs);
        logs.push((p, pod));
    }
    // Started after the writing, the agent finds every file whole and reads each in one go.
    // Batches close on age or quiet only after a minute: nothing closes them here but memory.
    let (mut agent, port) = node.start_agent("[batch]\nquiet_secs = 60\n");
    eventually("every line of the first wave read", || {
        agent_metric(port, "jobarchive_read_lines_total") == written.len() as f64
    });
    assert!(
        agent_metric(port, "jobarchive_batches_squeezed_total") >= 1.0,
        "over the budget, open batches were squeezed"
    );
    for (p, pod) in &logs {
        let msgs: Vec<String> = (0..100).map(|i| format!("pod {p} more {i}")).collect();
        pod.append("c", 0, &msgs);
        written.extend(msgs);
    }
    eventually("every line of the second wave read", || {
        agent_metric(port, "jobarchive_read_lines_total") == written.len() as f64
    });
    sigterm(&mut agent);
    let objects = walk_files(&std::path::Path::new(&node.store).join("logs"));
    assert_eq!(objects.len(), pods, "one object per stream");
    let mut got = fetched(&node, "squeeze");
    assert_eq!(got.len(), written.len(), "none lost, none twice");
    got.sort();
    written.sort();
    assert_eq!(got, written);
}
