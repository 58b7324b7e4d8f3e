//! The archive core end to end: pods tree → `jobarchive agent` → store → `jobarchive fetch`,
//! for the local store and for S3, record by record.

use jobarchive_e2e::*;
use std::collections::HashSet;

fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix} line {i} \"quoted\" \t tab"))
        .collect()
}

fn both_stores(test: impl Fn(Node)) {
    test(Node::local());
    test(Node::s3());
}

#[test]
fn drain_then_append_and_drain_again_ships_every_line_once() {
    both_stores(|node| {
        let pod = node.pod("default", "exit-nonzero-szsld", "uid-1");
        let first = lines("first", 500);
        pod.append("main", 0, &first);
        node.drain();
        let recs = node.fetch_records("exit-nonzero", &[]);
        assert_eq!(messages(&recs), first);
        assert_eq!(recs[0]["job"], "exit-nonzero");
        assert_eq!(recs[0]["attempt"], 1);
        assert_eq!(recs[0]["node"], "node-1");
        assert_eq!(recs[0]["job_uid"], serde_json::Value::Null);

        let second = lines("second", 300);
        pod.append("main", 0, &second);
        node.drain();
        let recs = node.fetch_records("exit-nonzero", &[]);
        assert_eq!(messages(&recs), [first.clone(), second].concat());
        let offsets: HashSet<u64> = recs.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
        assert_eq!(offsets.len(), recs.len(), "every record once");
    });
}

#[test]
fn attempts_are_numbered_by_first_line_and_fetched_in_order() {
    both_stores(|node| {
        // Written out of name order: attempt order comes from the first log line's time.
        let pods = [
            ("exit-nonzero-bg2hf", "u-b"),
            ("exit-nonzero-szsld", "u-a"),
            ("exit-nonzero-nq9nb", "u-c"),
        ];
        for (i, (name, uid)) in pods.iter().enumerate() {
            node.pod("default", name, uid)
                .append("c", 0, &[format!("attempt {} output", i + 1)]);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        node.drain();
        let recs = node.fetch_records("exit-nonzero", &[]);
        assert_eq!(
            messages(&recs),
            ["attempt 1 output", "attempt 2 output", "attempt 3 output"]
        );
        let attempts: Vec<u64> = recs
            .iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        assert_eq!(attempts, [1, 2, 3]);
        let last = node.fetch_records("exit-nonzero", &["--attempt", "last"]);
        assert_eq!(messages(&last), ["attempt 3 output"]);
        let out = run_expect(
            &mut node.cli(&["fetch", "exit-nonzero", "--prefix", "--timestamps"]),
            0,
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.starts_with("[attempt=1 pod=exit-nonzero-bg2hf container=c] 20"),
            "{text}"
        );

        // Filters that match nothing say what there is.
        let err = |args: &[&str]| {
            let out = run_expect(&mut node.cli(args), 1);
            String::from_utf8(out.stderr).unwrap()
        };
        let e = err(&["fetch", "exit-nonzero", "--attempt", "9"]);
        assert!(
            e.starts_with("jobarchive: error: job exit-nonzero has attempts 1-3; no attempt 9 (namespace default"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = err(&[
            "fetch",
            "exit-nonzero",
            "--attempt",
            "2",
            "--container",
            "main",
        ]);
        assert!(
            e.contains("attempt 2 of job exit-nonzero has container c; no container main"),
            "{e}"
        );
    });
}

#[test]
fn readers_never_create_the_store_they_are_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo/path");
    let url = format!("file://{}", typo.display());
    for args in [
        &["fetch", "foo"][..],
        &["ls"],
        &["ls", "-A"],
        &["verify"],
        &["report", "foo"],
    ] {
        for store in [typo.to_str().unwrap(), &url] {
            let out = run_expect(jobarchive().args(args).args(["--store", store]), 2);
            let err = String::from_utf8(out.stderr).unwrap();
            assert_eq!(
                err,
                format!(
                    "jobarchive: error: store folder {} does not exist (check --store or JOBARCHIVE_STORE; only the agent creates a store)\n",
                    typo.display()
                ),
                "{args:?}"
            );
            assert!(out.stdout.is_empty());
            assert!(!dir.path().join("typo").exists(), "{args:?} created it");
        }
    }
    // A bucket that does not exist: exit 3, one line that names it, for every reader.
    for args in [
        &["ls"][..],
        &["verify", "-A"],
        &["report", "foo"],
        &["fetch", "foo"],
    ] {
        let mut c = jobarchive();
        c.args(args).args(["--store", "s3://no-such-bucket-e2e/x"]);
        s3_env(&mut c);
        let out = run_expect(&mut c, 3);
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("s3://no-such-bucket-e2e/x/") && err.contains("NoSuchBucket"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn agent_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let node = Node::local();
    node.pod("default", "a-x7k2p", "u")
        .append("c", 0, &lines("x", 3));
    let out = run_expect(node.agent().arg("--drain").env("RUST_LOG", "info"), 0);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("agent starting"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in a piped log: {err:?}"
    );
    // And no progress drawn on a pipe either.
    assert!(!err.contains("objects shipped"), "{err}");
    node.pod("default", "a-x7k2p", "u")
        .append("c", 0, &lines("y", 3));
    let forced = run_expect(
        node.agent()
            .arg("--drain")
            .env("RUST_LOG", "warn")
            .env("JOBARCHIVE_PROGRESS", "always"),
        0,
    );
    let err = String::from_utf8(forced.stderr).unwrap();
    assert!(err.contains("drain: "), "{err}");
    assert!(err.contains("objects shipped, "), "{err}");

    // fetch into a pipe draws nothing, so `fetch | grep` sees only records.
    let out = run_expect(&mut node.cli(&["fetch", "a"]), 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 6);
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_expect(
        node.cli(&["fetch", "a"])
            .env("JOBARCHIVE_PROGRESS", "always"),
        0,
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("fetch: ") && err.contains(" objects, "),
        "{err}"
    );
}

#[test]
fn partial_lines_malformed_lines_and_invalid_utf8_survive() {
    let node = Node::local();
    let pod = node.pod("default", "job-x7k2p", "uid-2");
    let long = "x".repeat(70 * 1024);
    let mut raw = Vec::new();
    for (i, chunk) in long.as_bytes().chunks(16 * 1024).enumerate() {
        let tag = if (i + 1) * 16 * 1024 >= long.len() {
            "F"
        } else {
            "P"
        };
        raw.extend_from_slice(format!("2026-11-27T10:00:00.{i:09}Z stdout {tag} ").as_bytes());
        raw.extend_from_slice(chunk);
        raw.push(b'\n');
    }
    raw.extend_from_slice(b"this line is not CRI at all\n");
    raw.extend_from_slice(b"2026-11-27T10:00:01.5Z stderr F caf\xe9 bytes\n");
    raw.extend_from_slice(b"2026-11-27T10:00:02Z stdout F \n");
    pod.append_raw("c", 0, &raw);
    node.drain();
    let recs = node.fetch_records("job", &[]);
    assert_eq!(recs.len(), 3, "malformed line skipped, the rest kept");
    assert_eq!(recs[0]["message"].as_str().unwrap().len(), long.len());
    assert_eq!(recs[0]["offset"], 0);
    assert_eq!(recs[1]["stream"], "stderr");
    assert_eq!(recs[1]["message_b64"], "Y2Fm6SBieXRlcw==");
    assert_eq!(recs[2]["message"], "");
    let text = run_expect(&mut node.cli(&["fetch", "job"]), 0).stdout;
    assert!(
        text.ends_with(b"caf\xe9 bytes\n\n"),
        "text output restores the exact bytes"
    );
}

#[test]
fn rotation_mid_stream_keeps_offsets_and_lines() {
    both_stores(|node| {
        let pod = node.pod("default", "rot-x7k2p", "uid-3");
        let a = lines("before rotation", 200);
        pod.append("c", 0, &a);
        node.drain();
        // kubelet: rename 0.log to 0.log.<stamp>, the runtime reopens a new 0.log.
        let log = pod.log_path("c", 0);
        std::fs::rename(&log, log.with_file_name("0.log.20261127-120000")).unwrap();
        let b = lines("after rotation", 200);
        pod.append("c", 0, &b);
        node.drain();
        let recs = node.fetch_records("rot", &[]);
        assert_eq!(messages(&recs), [a.clone(), b].concat());
        let offsets: Vec<u64> = recs.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets continue across rotation"
        );
    });
}

#[test]
fn backfill_reads_rotated_plain_and_gzip_files_oldest_first() {
    use std::io::Write;
    let node = Node::local();
    let pod = node.pod("default", "bf-x7k2p", "uid-4");
    let dir = pod.path.join("c");
    std::fs::create_dir_all(&dir).unwrap();
    let cri = |msgs: &[&str]| {
        msgs.iter()
            .map(|m| format!("2026-11-27T10:00:00Z stdout F {m}\n"))
            .collect::<String>()
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(cri(&["oldest 1", "oldest 2"]).as_bytes())
        .unwrap();
    std::fs::write(dir.join("0.log.20261127-100000.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("0.log.20261127-110000"), cri(&["newer rotated"])).unwrap();
    std::fs::write(dir.join("0.log"), cri(&["current"])).unwrap();
    node.drain();
    assert_eq!(
        messages(&node.fetch_records("bf", &[])),
        ["oldest 1", "oldest 2", "newer rotated", "current"]
    );
}

#[test]
fn missing_job_exits_1_and_bad_store_exits_3() {
    let node = Node::local();
    node.pod("default", "a-x7k2p", "u")
        .append("c", 0, &lines("x", 1));
    node.drain();
    let out = run_expect(&mut node.cli(&["fetch", "no-such-job"]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-job") && err.lines().count() == 1,
        "{err}"
    );
    run_expect(&mut node.cli(&["ls", "-n", "empty-ns"]), 1);

    let mut bad_bucket = jobarchive();
    bad_bucket.args(["fetch", "a", "--store", "s3://no-such-bucket-e2e/x"]);
    s3_env(&mut bad_bucket);
    let out = run_expect(&mut bad_bucket, 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchBucket"));

    let mut bad_endpoint = jobarchive();
    bad_endpoint
        .args(["ls", "--store", "s3://b/x"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s");
    run_expect(&mut bad_endpoint, 3);
    run_expect(
        jobarchive()
            .args(["fetch", "a", "--attempt", "first", "--store"])
            .arg(&node.store),
        2,
    );
    run_expect(jobarchive().args(["fetch", "a"]), 2);
}
