//! `jobarchive describe` on the demo's archive (the seed study's three Jobs, recorded by the
//! agent's recorder from the demo's simulated cluster): the text output of each Job against a
//! checked-in golden file, the JSON output, and the exit codes.
//!
//! The demo is deterministic (fixed times, uids and readings), so its `describe` output is too.
//! After an intended change of the output: `JOBARCHIVE_BLESS=1 cargo test -p jobarchive-e2e
//! --test describe` rewrites tests/golden/, then review the diff.

use jobarchive_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const JOBS: [&str; 3] = ["exit-nonzero", "invalid-secret", "over-provisioned"];

/// One demo archive for the whole test binary.
fn demo() -> &'static (tempfile::TempDir, String) {
    static DEMO: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let out = run_expect(
            jobarchive()
                .current_dir(dir.path())
                .arg("demo")
                .arg("--store")
                .arg(&store)
                .arg("--plots")
                .arg(dir.path().join("plots")),
            0,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("SIMULATED"),
            "the demo says what is simulated:\n{err}"
        );
        for job in JOBS {
            let svg = dir.path().join(format!("plots/{job}.svg"));
            assert!(
                std::fs::read_to_string(&svg).unwrap().contains("<svg"),
                "{}",
                svg.display()
            );
        }
        (dir, store.display().to_string())
    })
}

fn describe(args: &[&str]) -> std::process::Output {
    let (_, store) = demo();
    jobarchive()
        .arg("describe")
        .args(args)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

fn golden(job: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("golden/describe-{job}.txt"))
}

#[test]
fn describe_text_of_the_seed_jobs_matches_the_golden_files() {
    for job in JOBS {
        let out = describe(&[job]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let path = golden(job);
        if std::env::var_os("JOBARCHIVE_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (JOBARCHIVE_BLESS=1 writes it)", path.display()));
        assert_eq!(text, want, "describe {job} differs from {}", path.display());
    }
}

#[test]
fn the_three_answers_are_in_the_descriptions() {
    let text = |job: &str| String::from_utf8(describe(&[job]).stdout).unwrap();
    let exit_nonzero = text("exit-nonzero");
    assert!(
        exit_nonzero.contains("Failed (BackoffLimitExceeded)"),
        "{exit_nonzero}"
    );
    assert_eq!(
        exit_nonzero.matches("Failed  1 Error").count(),
        6,
        "{exit_nonzero}"
    );
    let invalid = text("invalid-secret");
    assert!(
        invalid.contains("CreateContainerConfigError (Error: secret \"notpresent\" not found), holding its 1 GiB memory request"),
        "{invalid}"
    );
    let over = text("over-provisioned");
    assert!(over.contains("2 GiB  1.01 GiB"), "{over}");
}

#[test]
fn describe_json_is_one_object_with_every_attempt() {
    let out = describe(&["exit-nonzero", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["job"], "exit-nonzero");
    assert_eq!(d["record"], "api");
    assert_eq!(d["spec"]["backoff_limit"], 6);
    assert_eq!(d["condition"]["reason"], "BackoffLimitExceeded");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 6);
    assert_eq!(d["attempts"][5]["pod"], "exit-nonzero-txl6b");
    assert_eq!(d["attempts"][5]["memory_request_bytes"], 1u64 << 30);
    assert!(d["events"].as_array().unwrap().len() >= 31);
}

#[test]
fn missing_jobs_exit_1_and_bad_usage_exits_2() {
    let out = describe(&["no-such-job"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-job")
            && err.contains("jobs/cluster=default/namespace=default/job=no-such-job/"),
        "{err}"
    );
    let out = describe(&["exit-nonzero", "--job-uid", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("job_uid nope"));
    assert_eq!(
        describe(&["exit-nonzero", "--format", "yaml"])
            .status
            .code(),
        Some(2)
    );
    let out = jobarchive()
        .args(["describe", "exit-nonzero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "no store given");
}
