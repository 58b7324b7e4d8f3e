//! `[store]` object protection against the S3 test server (moto): server-side encryption,
//! storage class and Object Lock retention, checked on the uploaded objects with HeadObject.

use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption, StorageClass};
use jobarchive_e2e::*;

/// Archive one small job with `toml` as the agent's config; returns (a log key, the manifest
/// key), both relative to the store.
fn archive(node: &Node, toml: &str) -> (String, String) {
    node.pod("default", "locked-x7k2p", "u1")
        .append("main", 0, &["protected line".to_string()]);
    node.drain_with_config(toml);
    (
        node.keys("logs/")[0].clone(),
        node.keys("manifests/")[0].clone(),
    )
}

fn head(bucket: &str, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    let (bucket, key) = (bucket.to_string(), format!("archive/{key}"));
    with_s3(|c| async move {
        c.head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("head object")
    })
}

#[test]
fn sse_s3_and_storage_class_reach_the_objects() {
    let bucket = new_bucket();
    let node = Node::s3_in(&bucket);
    let (log, manifest) = archive(
        &node,
        "[store]\nsse = \"AES256\"\nstorage_class = \"STANDARD_IA\"\n",
    );
    let h = head(&bucket, &log);
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(h.storage_class(), Some(&StorageClass::StandardIa));
    // Manifests are rewritten while the pod runs: they stay in the default class.
    let h = head(&bucket, &manifest);
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(h.storage_class(), None);
}

#[test]
fn sse_kms_names_its_key() {
    let bucket = new_bucket();
    let node = Node::s3_in(&bucket);
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/0b5e7a4c-1d2f-4e3a-9c8b-000000000001";
    let (log, _) = archive(
        &node,
        &format!("[store]\nsse = \"aws:kms\"\nsse_kms_key_id = \"{key_id}\"\n"),
    );
    let h = head(&bucket, &log);
    assert_eq!(
        h.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(h.ssekms_key_id(), Some(key_id));
}

#[test]
fn object_lock_retains_logs_and_every_manifest_version() {
    let bucket = new_locked_bucket();
    let node = Node::s3_in(&bucket);
    let toml = "[store]\nobject_lock_mode = \"GOVERNANCE\"\nobject_lock_days = 2\n";
    let (log, manifest) = archive(&node, toml);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for key in [&log, &manifest] {
        let h = head(&bucket, key);
        assert_eq!(
            h.object_lock_mode(),
            Some(&ObjectLockMode::Governance),
            "{key}"
        );
        let until = h
            .object_lock_retain_until_date()
            .expect("retain-until")
            .secs();
        let two_days = 2 * 86_400;
        assert!(
            (now + two_days - 3600..=now + two_days + 3600).contains(&until),
            "{key}: retained until {until}, now {now}"
        );
    }
    // A second batch rewrites the manifest: a new locked version, the first one kept.
    node.pod("default", "locked-x7k2p", "u1")
        .append("main", 0, &["second line".to_string()]);
    node.drain_with_config(toml);
    let versions = {
        let (bucket, key) = (bucket.clone(), format!("archive/{manifest}"));
        with_s3(|c| async move {
            c.list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .send()
                .await
                .expect("list versions")
                .versions()
                .len()
        })
    };
    assert_eq!(versions, 2);
    assert_eq!(
        messages(&node.fetch_records("locked", &[])),
        ["protected line", "second line"]
    );
    run_expect(&mut node.cli(&["verify", "locked"]), 0);
}

#[test]
fn object_lock_on_a_bucket_without_it_fails_clearly() {
    let node = Node::s3_in(&new_bucket());
    node.pod("default", "locked-x7k2p", "u1")
        .append("main", 0, &["line".to_string()]);
    let path = node.dir.path().join("jobarchive.toml");
    std::fs::write(
        &path,
        "[store]\nobject_lock_mode = \"COMPLIANCE\"\nobject_lock_days = 1\nmax_retries = 0\n",
    )
    .unwrap();
    let out = run_expect(node.agent().arg("--config").arg(&path).arg("--drain"), 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PutObject") && err.contains("InvalidRequest"),
        "{err}"
    );
    assert_eq!(
        err.trim_end()
            .lines()
            .last()
            .map(|l| l.starts_with("jobarchive: error:")),
        Some(true),
        "{err}"
    );
}

#[test]
fn invalid_protection_settings_are_usage_errors() {
    let node = Node::local();
    let path = node.dir.path().join("jobarchive.toml");
    std::fs::write(&path, "[store]\nobject_lock_mode = \"GOVERNANCE\"\n").unwrap();
    let out = run_expect(node.agent().arg("--config").arg(&path).arg("--drain"), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("object_lock_days"), "{err}");
}
