//! Faults end to end: the store going away (spool), crashes and lost checkpoints, a state dir
//! that cannot be written, shutdown with a store that does not answer. In every case each line
//! written is fetched exactly once.

use jobarchive_e2e::*;
use std::process::{Child, Stdio};

fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} line {i}")).collect()
}

fn log_text(node: &Node) -> String {
    std::fs::read_to_string(node.agent_log()).unwrap_or_default()
}

/// Wait (bounded) for the agent to exit; its exit code.
fn exit_code(child: &mut Child) -> Option<i32> {
    let mut status = None;
    eventually("the agent exits", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap().code()
}

fn spooled_files(node: &Node) -> usize {
    std::fs::read_dir(node.state_dir().join("spool"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn store_outage_spools_batches_and_pods_deleted_meanwhile_lose_nothing() {
    let mut moto = Moto::start();
    let node = Node::s3_on(&moto, "outage");
    // One upload at a time: without a spool, reading would stop after a few batches and the
    // CronJob pods created during the outage would never be opened before their deletion.
    let (mut agent, port) = node.start_agent(
        "rescan_interval_secs = 1\n[batch]\nmax_age_secs = 1\n[store]\nupload_concurrency = 1\nmax_retries = 2\n",
    );
    moto.stop();
    let steady = node.pod("default", "steady-x7k2p", "uid-steady");
    let mut steady_lines = Vec::new();
    let mut runs = Vec::new();
    for i in 0..8 {
        let batch = lines(&format!("steady round {i}"), 200);
        steady.append("main", 0, &batch);
        steady_lines.extend(batch);
        let job = format!("nightly-{}", 29_929_854 + i);
        let pod = node.pod("default", &format!("{job}-x7k2p"), &format!("uid-run-{i}"));
        let msgs = lines(&job, 150);
        pod.append("main", 0, &msgs);
        let log = pod.log_path("main", 0);
        eventually(
            "the agent follows the CronJob pod's log (and the steady pod's)",
            || follows(&agent, port, &log, 2),
        );
        // The CronJob history limit deletes the pod while the store is still down.
        std::fs::remove_dir_all(&pod.path).unwrap();
        runs.push((job, msgs));
        eventually("the batches of the deleted pod are spooled", || {
            !holds_open(agent.id(), &log)
        });
    }
    eventually("spooled bytes on /metrics", || {
        agent_metric(port, "jobarchive_spool_bytes") > 0.0
    });
    assert!(spooled_files(&node) > 0);

    moto.restart();
    moto.create_bucket("outage");
    let after = lines("steady after the outage", 100);
    steady.append("main", 0, &after);
    steady_lines.extend(after);
    eventually("every line of the steady pod, once", || {
        fetched(&node, "steady") == steady_lines
    });
    for (job, msgs) in &runs {
        eventually("every line of the deleted CronJob pod, once", || {
            fetched(&node, job) == *msgs
        });
    }
    eventually("the spool is empty", || {
        agent_metric(port, "jobarchive_spool_bytes") == 0.0
    });
    signal(agent.id(), "TERM");
    assert_eq!(exit_code(&mut agent), Some(0));
    assert_eq!(spooled_files(&node), 0);
    assert_eq!(fetched(&node, "steady"), steady_lines, "nothing twice");
}

#[test]
fn a_full_spool_pauses_reading_says_so_once_and_loses_nothing() {
    let mut moto = Moto::start();
    let node = Node::s3_on(&moto, "full");
    let (mut agent, _port) = node.start_agent(
        "[batch]\nmax_bytes = 1024\nmax_age_secs = 1\n[store]\nmax_retries = 1\nspool_max_bytes = 2048\n",
    );
    moto.stop();
    let pod = node.pod("default", "chatty-x7k2p", "uid-chatty");
    let msgs = lines("chatty", 300);
    pod.append("main", 0, &msgs);
    eventually("the agent says the spool is full", || {
        log_text(&node).contains("spool full")
    });
    moto.restart();
    moto.create_bucket("full");
    eventually("every line, once", || fetched(&node, "chatty") == msgs);
    signal(agent.id(), "TERM");
    assert_eq!(exit_code(&mut agent), Some(0));
    assert_eq!(
        log_text(&node).matches("spool full").count(),
        1,
        "one warning per outage"
    );
}

#[test]
fn shutdown_timeout_spools_what_is_unshipped_and_the_next_start_uploads_it() {
    let mut moto = Moto::start();
    let node = Node::s3_on(&moto, "grace");
    // Retries that would outlast any grace period: only the shutdown timeout ends them.
    let (mut agent, port) =
        node.start_agent("shutdown_timeout_secs = 1\n[store]\nmax_retries = 100000\n");
    moto.stop();
    let pod = node.pod("default", "late-x7k2p", "uid-late");
    let msgs = lines("late", 300);
    pod.append("main", 0, &msgs);
    eventually("the agent read the lines", || {
        agent_metric(port, "jobarchive_read_lines_total") == 300.0
    });
    signal(agent.id(), "TERM");
    assert_eq!(exit_code(&mut agent), Some(0));
    assert!(spooled_files(&node) > 0, "unshipped batches are spooled");

    moto.restart();
    moto.create_bucket("grace");
    node.drain();
    assert_eq!(spooled_files(&node), 0);
    assert_eq!(fetched(&node, "late"), msgs);
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut moto = Moto::start();
    let node = Node::s3_on(&moto, "twice");
    let (mut agent, port) =
        node.start_agent("shutdown_timeout_secs = 3600\n[store]\nmax_retries = 100000\n");
    moto.stop();
    node.pod("default", "stuck-x7k2p", "uid-stuck")
        .append("main", 0, &lines("stuck", 10));
    eventually("the agent read the lines", || {
        agent_metric(port, "jobarchive_read_lines_total") == 10.0
    });
    signal(agent.id(), "TERM");
    eventually("the first signal is taken", || {
        log_text(&node).contains("stopping: flushing")
    });
    signal(agent.id(), "TERM");
    assert_eq!(exit_code(&mut agent), Some(130));
}

#[test]
fn kill_9_cycles_with_many_streams_and_rotations_never_lose_or_duplicate() {
    let node = Node::s3();
    let jobs = ["multi-a", "multi-b", "multi-c"];
    let pods: Vec<PodLogs> = jobs
        .iter()
        .map(|j| node.pod("default", &format!("{j}-x7k2p"), &format!("uid-{j}")))
        .collect();
    let containers = ["c1", "c2"];
    let mut written: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); 2]; 3];
    let mut seed = 0x9e37_79b9_u64;
    for cycle in 0..6 {
        let agent = node
            .agent()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for burst in 0..4 {
            for (p, pod) in pods.iter().enumerate() {
                for (c, container) in containers.iter().enumerate() {
                    if burst == 2 && c == 0 && p == cycle % 3 {
                        pod.rotate(container, 0);
                    }
                    let batch = lines(&format!("cycle {cycle} burst {burst} {container}"), 100);
                    pod.append(container, 0, &batch);
                    written[p][c].extend(batch);
                }
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(std::time::Duration::from_millis(seed % 200));
        }
        signal(agent.id(), "KILL");
        let mut agent = agent;
        let _ = agent.wait();
    }
    node.drain();
    for (p, job) in jobs.iter().enumerate() {
        for (c, container) in containers.iter().enumerate() {
            let out = run_expect(&mut node.cli(&["fetch", job, "--container", container]), 0);
            let got: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            assert_eq!(got.len(), written[p][c].len(), "{job}/{container}: count");
            assert_eq!(
                got, written[p][c],
                "{job}/{container}: every line once, in order"
            );
        }
    }
}

/// "shipped N records" of a drain's summary line.
fn shipped_records(out: &std::process::Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stderr);
    let after = text.split("shipped ").nth(1).expect("drain summary");
    after.split(' ').next().unwrap().parse().unwrap()
}

/// The objects the pod's manifest lists in the local store (its parts, in key order): their
/// (first, end) offsets.
fn manifest_ranges(node: &Node, pod: &str) -> Vec<(u64, u64)> {
    let parts: Vec<String> = node
        .keys("manifest-parts/")
        .into_iter()
        .filter(|k| k.contains(&format!("/pod={pod}/")))
        .collect();
    assert!(!parts.is_empty(), "no manifest parts for {pod}");
    parts
        .iter()
        .flat_map(|k| {
            let body = node.get_object(k);
            String::from_utf8(body)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|l| l["kind"] == "object")
        .map(|o| {
            (
                o["first_offset"].as_u64().unwrap(),
                o["end_offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn assert_contiguous(ranges: &[(u64, u64)]) {
    assert_eq!(ranges[0].0, 0);
    for w in ranges.windows(2) {
        assert_eq!(w[0].1, w[1].0, "objects are contiguous: {ranges:?}");
    }
}

#[test]
fn corrupt_or_missing_checkpoints_resume_from_the_manifest_in_the_store() {
    let node = Node::local();
    let pod = node.pod("default", "resume-x7k2p", "uid-r");
    let mut all = lines("first", 400);
    pod.append("main", 0, &all);
    node.drain();
    let state_file = node.state_dir().join("pods/uid-r.json");

    // Garbage in the checkpoint, and the log rotated meanwhile.
    std::fs::write(&state_file, b"\x00{not json").unwrap();
    pod.rotate("main", 0);
    let second = lines("after corruption", 100);
    pod.append("main", 0, &second);
    all.extend(second);
    let out = node.drain();
    assert_eq!(shipped_records(&out), 100, "only the new lines are shipped");
    assert_eq!(fetched(&node, "resume"), all);

    // No checkpoint at all.
    std::fs::remove_file(&state_file).unwrap();
    let third = lines("after loss", 50);
    pod.append("main", 0, &third);
    all.extend(third);
    let out = node.drain();
    assert_eq!(shipped_records(&out), 50, "only the new lines are shipped");
    assert_eq!(fetched(&node, "resume"), all);
    assert_contiguous(&manifest_ranges(&node, "resume-x7k2p"));
}

#[test]
fn a_state_dir_that_cannot_be_written_is_reported_and_shipping_goes_on() {
    let node = Node::local();
    let (mut agent, _port) = node.start_agent("[batch]\nmax_age_secs = 1\n");
    let pods_dir = node.state_dir().join("pods");
    // Root ignores permission bits; the immutable attribute stops root too.
    let locked = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&pods_dir)
        .status()
        .is_ok_and(|s| s.success());
    if !locked {
        eprintln!("skipped: chattr +i is not available here");
        signal(agent.id(), "KILL");
        return;
    }
    let pod = node.pod("default", "nostate-x7k2p", "uid-ns");
    let msgs = lines("nostate", 200);
    pod.append("main", 0, &msgs);
    eventually("every line shipped without checkpoints", || {
        fetched(&node, "nostate") == msgs
    });
    eventually("a clear error about the checkpoint", || {
        log_text(&node).contains("cannot write checkpoint")
    });
    let unlocked = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&pods_dir)
        .status();
    signal(agent.id(), "TERM");
    assert_eq!(exit_code(&mut agent), Some(0));
    assert!(unlocked.is_ok_and(|s| s.success()));
}
