//! `jobarchive verify` end to end, on the local store and on S3: an untouched archive passes,
//! and each kind of tampering behind the agent's back (an object deleted, truncated, rewritten,
//! added, a manifest deleted) exits 1 and names what it found.

use jobarchive_e2e::*;

/// Small batches, so a job has several objects to tamper with.
const SMALL_BATCHES: &str = "[batch]\nmax_bytes = 1024\n";

fn both_stores(test: impl Fn(Node)) {
    test(Node::local());
    test(Node::s3());
}

/// Two jobs archived by the agent; returns the log keys of `alpha`.
fn archive(node: &Node) -> Vec<String> {
    for (pod, uid) in [("alpha-x7k2p", "ua"), ("beta-q9z4w", "ub")] {
        let lines: Vec<String> = (0..120)
            .map(|i| format!("{pod} line {i} with some padding to fill batches"))
            .collect();
        node.pod("default", pod, uid).append("main", 0, &lines);
    }
    node.drain_with_config(SMALL_BATCHES);
    let keys = node.keys("logs/cluster=default/namespace=default/job=alpha/");
    assert!(keys.len() >= 3, "several objects: {keys:?}");
    keys
}

fn verify(node: &Node, args: &[&str], code: i32) -> (String, String) {
    let mut full = vec!["verify"];
    full.extend_from_slice(args);
    let out = run_expect(&mut node.cli(&full), code);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// verify exits 1, reports `alpha` damaged (or its objects unlisted) and names `key` with `kind`.
fn assert_caught(node: &Node, kind: &str, key: &str) {
    let (out, _) = verify(node, &["alpha"], 1);
    let line = format!("  {kind:<10} {key}");
    assert!(out.contains(&line), "expected {line:?} in:\n{out}");
    // The other job is untouched and still passes on its own.
    verify(node, &["beta"], 0);
}

#[test]
fn an_untouched_archive_verifies() {
    both_stores(|node| {
        let keys = archive(&node);
        let (out, err) = verify(&node, &[], 0);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with(
                "incomplete  default/alpha job_uid=unknown attempt=1 pod=alpha-x7k2p: still open: container=main restart=0"
            ),
            "{out}"
        );
        let total = node.keys("logs/").len();
        assert_eq!(
            lines[2],
            format!("verify: 1 namespace, 2 jobs, 2 attempts, {total} objects: 0 complete, 2 incomplete, 0 damaged; 0 unlisted objects")
        );
        // stderr is a pipe here: no progress, nothing at all.
        assert_eq!(err, "");
        assert!(keys.iter().all(|k| !out.contains(k.as_str())));
    });
}

#[test]
fn progress_is_drawn_only_on_a_terminal_or_when_forced() {
    let node = Node::local();
    archive(&node);
    let total = node.keys("logs/").len();
    let out = run_expect(
        node.cli(&["verify"]).env("JOBARCHIVE_PROGRESS", "always"),
        0,
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("/{total} objects checked, ")),
        "{err}"
    );
    assert!(err.contains("ETA"), "{err}");
    // The results on stdout are the same either way.
    let (plain, _) = verify(&node, &[], 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), plain);
    let out = run_expect(node.cli(&["verify"]).env("JOBARCHIVE_PROGRESS", "never"), 0);
    assert!(out.stderr.is_empty());
}

#[test]
fn all_namespaces_covers_the_whole_bucket() {
    both_stores(|node| {
        archive(&node);
        let lines: Vec<String> = (0..120)
            .map(|i| format!("chatty line {i} with some padding to fill batches"))
            .collect();
        node.pod("batch", "chatty-k2x9q", "uc")
            .append("main", 0, &lines);
        node.drain_with_config(SMALL_BATCHES);
        let batch = node.keys("logs/cluster=default/namespace=batch/job=chatty/");
        assert!(batch.len() >= 2, "{batch:?}");
        let mut body = node.get_object(&batch[1]);
        let last = body.len() - 1;
        body[last] ^= 0xff;
        node.put_object(&batch[1], &body);

        // Namespace default alone: the damage in batch is out of scope, and the summary says so.
        let (out, _) = verify(&node, &[], 0);
        assert!(!out.contains("batch/"), "{out}");
        assert!(
            out.contains("verify: 1 namespace, 2 jobs, 2 attempts, "),
            "{out}"
        );

        let (out, err) = verify(&node, &["-A"], 1);
        let line = format!("  sha256     {}", batch[1]);
        assert!(out.contains(&line), "expected {line:?} in:\n{out}");
        assert!(
            out.contains("damaged     batch/chatty job_uid=unknown attempt=1"),
            "{out}"
        );
        let total = node.keys("logs/").len();
        let summary = out.lines().last().unwrap();
        assert_eq!(
            summary,
            format!("verify: 2 namespaces, 3 jobs, 3 attempts, {total} objects: 0 complete, 2 incomplete, 1 damaged; 0 unlisted objects")
        );
        assert!(err.contains("1 damaged attempts"), "{err}");
        // The same damage is reported once, not once per way it was found.
        assert_eq!(out.matches(batch[1].as_str()).count(), 1, "{out}");

        // ls follows the same scope; a job name and -A do not go together.
        let ls = |args: &[&str]| {
            let mut full = vec!["ls"];
            full.extend_from_slice(args);
            String::from_utf8(run_expect(&mut node.cli(&full), 0).stdout).unwrap()
        };
        assert!(!ls(&[]).contains("chatty"));
        let all = ls(&["-A"]);
        let namespaces: Vec<&str> = all
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(namespaces, ["batch", "default", "default"], "{all}");
        verify(&node, &["alpha", "-A"], 2);
        verify(&node, &["-A", "-n", "batch"], 2);
    });
}

#[test]
fn a_resized_object_is_named_once() {
    let node = Node::local();
    let keys = archive(&node);
    let body = node.get_object(&keys[0]);
    node.put_object(&keys[0], &body[..body.len() / 2]);
    let (out, _) = verify(&node, &["alpha"], 1);
    assert_eq!(out.matches(keys[0].as_str()).count(), 1, "{out}");
}

#[test]
fn a_deleted_object_is_missing() {
    both_stores(|node| {
        let keys = archive(&node);
        node.delete_object(&keys[1]);
        assert_caught(&node, "missing", &keys[1]);
        let (out, _) = verify(&node, &[], 1);
        assert!(out.contains("damaged     default/alpha"), "{out}");
        assert!(out.ends_with("1 damaged; 0 unlisted objects\n"), "{out}");
    });
}

#[test]
fn a_truncated_object_has_the_wrong_size() {
    both_stores(|node| {
        let keys = archive(&node);
        let body = node.get_object(&keys[0]);
        node.put_object(&keys[0], &body[..body.len() / 2]);
        assert_caught(&node, "size", &keys[0]);
    });
}

#[test]
fn a_rewritten_object_of_the_same_size_fails_its_sha256() {
    both_stores(|node| {
        let keys = archive(&node);
        let mut body = node.get_object(&keys[2]);
        let last = body.len() - 1;
        body[last] ^= 0xff;
        node.put_object(&keys[2], &body);
        assert_caught(&node, "sha256", &keys[2]);
    });
}

#[test]
fn objects_no_manifest_lists_are_unlisted() {
    both_stores(|node| {
        let keys = archive(&node);
        let stray = keys[0].replace("/00000000000000000000.", "/00000000000099999999.");
        node.put_object(&stray, &node.get_object(&keys[0]));
        assert_caught(&node, "unlisted", &stray);

        // Without its manifest, every object of the attempt is unlisted.
        let manifest = node.keys("manifests/cluster=default/namespace=default/job=alpha/");
        node.delete_object(&manifest[0]);
        let (out, _) = verify(&node, &["alpha"], 1);
        for k in &keys {
            assert!(out.contains(&format!("  unlisted   {k}")), "{k} in:\n{out}");
        }
    });
}

#[test]
fn nothing_to_verify_exits_1_with_one_line() {
    let node = Node::local();
    archive(&node);
    let (out, err) = verify(&node, &["no-such-job"], 1);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-job"), "{err}");
}
