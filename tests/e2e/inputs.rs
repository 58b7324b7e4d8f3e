//! Hostile and heavy input end to end: odd log trees (FIFOs, folders where files belong, names
//! that do not parse), symlinks to files outside the allowed roots, credentials at trace level,
//! and thousands of short-lived pods coming and going on one node.

use jobarchive_e2e::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} line {i}")).collect()
}

/// `agent --drain`, with a bound: a reader stuck on one bad file would otherwise hang the test.
fn drain_bounded(node: &Node) -> Output {
    let mut child = node
        .agent()
        .arg("--drain")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut done = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done && std::time::Instant::now() < deadline {
        done = child.try_wait().unwrap().is_some();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done, "drain finished");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn odd_trees_are_skipped_and_the_rest_ships() {
    let node = Node::local();
    let logs = node.log_dir();
    let good = node.pod("default", "good-x7k2p", "uid-good");
    let good_lines = lines("good", 100);
    good.append("main", 0, &good_lines);
    std::fs::write(good.path.join("main/notes.txt"), "not a log\n").unwrap();
    std::fs::write(good.path.join("main/0.log.tmp"), "not a log either\n").unwrap();
    std::fs::write(
        good.path.join("stray-file"),
        "a file where containers live\n",
    )
    .unwrap();

    std::fs::create_dir_all(logs.join("default_empty-x7k2p_uid-empty")).unwrap();
    std::fs::create_dir_all(logs.join("default_hollow-x7k2p_uid-hollow/main")).unwrap();
    for name in ["garbage", "a_b", "ns_bad=name_uid", "ns_x_y_z", "_x_"] {
        std::fs::create_dir_all(logs.join(name).join("main")).unwrap();
        std::fs::write(
            logs.join(name).join("main/0.log"),
            "2026-11-27T10:00:00Z stdout F x\n",
        )
        .unwrap();
    }
    // A pod folder replaced by a file, a container folder replaced by a file.
    std::fs::write(logs.join("default_file-x7k2p_uid-file"), "x").unwrap();
    let flat = logs.join("default_flat-x7k2p_uid-flat");
    std::fs::create_dir_all(&flat).unwrap();
    std::fs::write(flat.join("main"), "x").unwrap();
    // Where a log file should be: a FIFO nobody writes (opening it for reading would block
    // forever), and a folder.
    let fifo = node.pod("default", "fifo-x7k2p", "uid-fifo");
    std::fs::create_dir_all(fifo.path.join("main")).unwrap();
    mkfifo(&fifo.path.join("main/0.log"));
    let dirlog = node.pod("default", "dirlog-x7k2p", "uid-dirlog");
    std::fs::create_dir_all(dirlog.path.join("main/0.log")).unwrap();

    let later = node.pod("default", "zlast-x7k2p", "uid-zlast");
    let later_lines = lines("zlast", 50);
    later.append("main", 0, &later_lines);

    drain_bounded(&node);
    assert_eq!(fetched(&node, "good"), good_lines);
    assert_eq!(fetched(&node, "zlast"), later_lines);
    let out = run_expect(&mut node.cli(&["ls"]), 0);
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        !listed.contains("fifo") && !listed.contains("dirlog"),
        "{listed}"
    );
}

#[test]
fn symlinks_out_of_the_roots_are_not_followed_and_are_reported() {
    let node = Node::local();
    let outside = node.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = "2026-11-27T10:00:00.000000000Z stdout F TOP SECRET token=hunter2\n";
    std::fs::write(outside.join("secret.log"), secret).unwrap();
    std::fs::write(outside.join("0.log"), secret).unwrap();

    let file_link = node.pod("default", "sneaky-x7k2p", "uid-sneaky");
    std::fs::create_dir_all(file_link.path.join("main")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("secret.log"),
        file_link.path.join("main/0.log"),
    )
    .unwrap();
    let dir_link = node.pod("default", "sneakydir-x7k2p", "uid-sneakydir");
    std::os::unix::fs::symlink(&outside, dir_link.path.join("main")).unwrap();
    // `..` in a folder name never parses as a pod; through a real pod folder it resolves
    // outside the roots like any symlink.
    let dots = node.pod("default", "dots-x7k2p", "uid-dots");
    std::fs::create_dir_all(dots.path.join("main")).unwrap();
    std::os::unix::fs::symlink("../../../outside/secret.log", dots.path.join("main/0.log"))
        .unwrap();
    let good = node.pod("default", "honest-x7k2p", "uid-honest");
    let msgs = lines("honest", 20);
    good.append("main", 0, &msgs);

    let out = drain_bounded(&node);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outside the allowed roots"), "{stderr}");
    assert_eq!(fetched(&node, "honest"), msgs);
    for job in ["sneaky", "sneakydir", "dots"] {
        assert!(fetched(&node, job).is_empty(), "{job} not shipped");
    }
    assert!(!store_contains(Path::new(&node.store), "TOP SECRET"));
}

/// Does any object of a local store hold `needle` (gzip objects decompressed)?
fn store_contains(dir: &Path, needle: &str) -> bool {
    use std::io::Read;
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            return store_contains(&p, needle);
        }
        let raw = std::fs::read(&p).unwrap();
        let mut text = String::new();
        let _ = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_string(&mut text);
        text.contains(needle) || String::from_utf8_lossy(&raw).contains(needle)
    })
}

#[test]
fn credentials_never_appear_in_logs_even_at_trace_level() {
    let moto = Moto::start();
    let node = Node::s3_on(&moto, "creds");
    let (key, secret) = moto.enable_auth();
    let with_key = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("RUST_LOG", "trace");
    };
    let pod = node.pod("default", "secretive-x7k2p", "uid-sec");
    let msgs = lines("secretive", 30);
    pod.append("main", 0, &msgs);
    let mut cmd = node.agent();
    with_key(&mut cmd);
    let out = run_expect(cmd.arg("--drain"), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRACE"), "trace logging is on");
    assert!(!stderr.contains(&secret), "the secret key is never logged");

    let mut fetch = node.cli(&["fetch", "secretive"]);
    with_key(&mut fetch);
    let out = run_expect(&mut fetch, 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 30);

    // A session token travels in a header of every request: it must not be logged either
    // (moto refuses this made-up one; what matters is what the agent printed meanwhile).
    let token = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENmarker0123456789";
    pod.append("main", 0, &lines("more", 5));
    let mut cmd = node.agent();
    with_key(&mut cmd);
    let out = cmd
        .arg("--drain")
        .env("AWS_SESSION_TOKEN", token)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TRACE"), "trace logging is on");
    assert!(!stderr.contains(token), "the session token is never logged");
    assert!(!stderr.contains(&secret), "the secret key is never logged");
}

/// A pod name suffix from the apiserver's generateName alphabet, unique per `n`.
fn suffix(mut n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| {
            let c = ALPHABET[n % ALPHABET.len()] as char;
            n /= ALPHABET.len();
            c
        })
        .collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

const WAVES: usize = 10;
const PODS_PER_WAVE: usize = 300;
const LINES_PER_POD: usize = 3;

#[test]
fn thousands_of_pods_coming_and_going_leave_no_descriptors_memory_or_state_behind() {
    let node = Node::local();
    let (mut agent, port) =
        node.start_agent("rescan_interval_secs = 1\n[batch]\nmax_age_secs = 1\n");
    let pid = agent.id();
    eventually("the agent serves /metrics", || {
        agent_metric(port, "jobarchive_files_open") == 0.0
    });
    let idle_fds = fd_count(pid);
    let mut rss_after_first_wave = 0;
    for wave in 0..WAVES {
        let pods: Vec<PodLogs> = (0..PODS_PER_WAVE)
            .map(|i| {
                let n = wave * PODS_PER_WAVE + i;
                node.pod(
                    "default",
                    &format!("churn-w{wave}-{}", suffix(n)),
                    &format!("uid-{n}"),
                )
            })
            .collect();
        for (i, pod) in pods.iter().enumerate() {
            pod.append(
                "main",
                0,
                &lines(&format!("wave {wave} pod {i}"), LINES_PER_POD),
            );
        }
        let shipped = ((wave + 1) * PODS_PER_WAVE * LINES_PER_POD) as f64;
        eventually("the wave is shipped", || {
            agent_metric(port, "jobarchive_shipped_records_total") == shipped
        });
        // The pods finish and the kubelet removes their folders.
        for pod in &pods {
            std::fs::remove_dir_all(&pod.path).unwrap();
        }
        eventually("the agent forgets the wave's pods", || {
            agent_metric(port, "jobarchive_files_open") == 0.0
                && agent_metric(port, "jobarchive_pods_pinned") == 0.0
                && agent_metric(port, "jobarchive_pod_states") == 0.0
        });
        if wave == 0 {
            rss_after_first_wave = vm_rss_kib(pid);
        }
    }
    // Sockets of the /metrics requests just made close on the agent's side a moment after the
    // test's side: what is asserted is that descriptors come back, not that they already have.
    eventually(
        "descriptors back to idle (at most 2 above the count at start)",
        || fd_count(pid) <= idle_fds + 2,
    );
    let states = std::fs::read_dir(node.state_dir().join("pods"))
        .unwrap()
        .count();
    assert_eq!(states, 0, "no state file left for pods that are gone");
    let rss = vm_rss_kib(pid);
    assert!(
        rss < rss_after_first_wave + 64 * 1024,
        "memory stays flat: {rss} KiB after {WAVES} waves, {rss_after_first_wave} KiB after one"
    );
    let last = fetched(&node, &format!("churn-w{}", WAVES - 1));
    assert_eq!(last.len(), PODS_PER_WAVE * LINES_PER_POD);
    signal(pid, "TERM");
    assert_eq!(agent.wait().unwrap().code(), Some(0));
}
