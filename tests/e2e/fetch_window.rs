//! `fetch --since/--until` and `fetch --follow` end to end. No timing assertions: time windows
//! use fixed timestamps written into the logs, and the follow test waits for lines to appear
//! (with a generous limit only so that a bug cannot hang the suite).

use jobarchive_e2e::*;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

const SMALL_BATCHES: &str = "[batch]\nmax_bytes = 1024\n";

fn both_stores(test: impl Fn(Node)) {
    test(Node::local());
    test(Node::s3());
}

/// 60 lines, one a minute from 10:00 to 10:59 on 2026-11-27, in several objects.
fn hour_of_logs(node: &Node) {
    let text: String = (0..60)
        .map(|m| {
            format!(
                "2026-11-27T10:{m:02}:00.5Z stdout F minute {m:02} {}\n",
                "x".repeat(60)
            )
        })
        .collect();
    node.pod("default", "hourly-x7k2p", "u1")
        .append_raw("main", 0, text.as_bytes());
    node.drain_with_config(SMALL_BATCHES);
}

fn minutes(recs: &[serde_json::Value]) -> Vec<u32> {
    messages(recs)
        .iter()
        .map(|m| m[7..9].parse().unwrap())
        .collect()
}

#[test]
fn since_and_until_select_records_by_time() {
    both_stores(|node| {
        hour_of_logs(&node);
        let recs = node.fetch_records(
            "hourly",
            &[
                "--since",
                "2026-11-27T10:20:00Z",
                "--until",
                "2026-11-27T10:40:00.5Z",
            ],
        );
        assert_eq!(minutes(&recs), (20..=39).collect::<Vec<_>>());
        let tail = node.fetch_records("hourly", &["--since", "2026-11-27T10:55:00.5Z"]);
        assert_eq!(minutes(&tail), [55, 56, 57, 58, 59]);
        // The logs are long past: a relative window of the last two hours holds nothing.
        run_expect(&mut node.cli(&["fetch", "hourly", "--since", "2h"]), 1);
        let all = node.fetch_records("hourly", &["--since", "3650d"]);
        assert_eq!(all.len(), 60);
        run_expect(&mut node.cli(&["fetch", "hourly", "--since", "soon"]), 2);
    });
}

#[test]
fn objects_outside_the_window_are_not_read() {
    let node = Node::local();
    hour_of_logs(&node);
    let keys = node.keys("logs/");
    // Corrupt the first object (minutes 00..): a fetch that reads it fails...
    node.put_object(&keys[0], b"not gzip");
    run_expect(&mut node.cli(&["fetch", "hourly"]), 3);
    // ...a fetch whose window starts well after its last record never opens it.
    let recs = node.fetch_records("hourly", &["--since", "2026-11-27T10:45:00Z"]);
    assert_eq!(minutes(&recs), (45..60).collect::<Vec<_>>());
}

#[test]
fn follow_prints_new_batches_once_until_interrupted() {
    both_stores(|node| {
        let pod = node.pod("default", "live-x7k2p", "u1");
        let first: Vec<String> = (0..30).map(|i| format!("first {i}")).collect();
        pod.append("main", 0, &first);
        node.drain_with_config(SMALL_BATCHES);

        let mut child = node
            .cli(&["fetch", "live", "--follow"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let read = |n: usize| -> Vec<String> {
            (0..n)
                .map(|_| {
                    rx.recv_timeout(Duration::from_secs(60))
                        .expect("follow output")
                })
                .collect()
        };
        assert_eq!(read(first.len()), first);

        // The job goes on: a later batch, and a new attempt of the same job.
        let second: Vec<String> = (0..30).map(|i| format!("second {i}")).collect();
        pod.append("main", 0, &second);
        node.drain_with_config(SMALL_BATCHES);
        assert_eq!(read(second.len()), second);
        let retry = vec!["attempt 2 says hello".to_string()];
        node.pod("default", "live-b4c6d", "u2")
            .append("main", 0, &retry);
        node.drain_with_config(SMALL_BATCHES);
        assert_eq!(read(1), retry);

        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "Ctrl-C ends a follow cleanly");
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_err(),
            "nothing printed twice"
        );
    });
}

#[test]
fn follow_and_until_do_not_mix() {
    let node = Node::local();
    hour_of_logs(&node);
    run_expect(
        &mut node.cli(&["fetch", "hourly", "--follow", "--until", "1h"]),
        2,
    );
}
