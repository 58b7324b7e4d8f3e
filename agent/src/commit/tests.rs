//! The shipper against an in-memory store that can be taken down at any point, a state dir and
//! a spool in a temp dir: what lands, in what order, what the state file says, and when a
//! pod's state may go.

use super::*;
use crate::batch::Batch;
use crate::contract::{decode_part, Manifest, PartLine};
use crate::encode::Encoder;
use crate::parse::{Record, StreamKind};
use crate::store::memory::MemoryStore;

/// A long interval: no manifest is due by time alone during a test.
const HOUR: Duration = Duration::from_secs(3600);

struct Rig {
    dir: tempfile::TempDir,
    mem: MemoryStore,
    state: StateDir,
    spool: Arc<Spool>,
    shipper: Arc<Shipper>,
    /// The shutdown grace clock: never over in these tests, but it must stay alive.
    _grace: watch::Sender<bool>,
}

fn rig(manifest_interval: Duration) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mem = MemoryStore::new();
    let state = StateDir::open(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let spool = Arc::new(Spool::open(dir.path(), 1 << 30, metrics.clone()).unwrap());
    let (grace, expired) = watch::channel(false);
    let cfg = ShipperConfig {
        level: 1,
        batch_bytes: 1 << 20,
        concurrency: 4,
        // One try: a store that is down sends the batch to the spool at once.
        max_retries: 1,
        give_up: false,
        manifest_interval,
    };
    let shipper = Arc::new(Shipper::new(
        Arc::new(Store::memory(mem.clone())),
        state.clone(),
        spool.clone(),
        HashMap::new(),
        cfg,
        metrics,
        expired,
    ));
    Rig {
        dir,
        mem,
        state,
        spool,
        shipper,
        _grace: grace,
    }
}

fn identity(uid: &str) -> PodIdentity {
    PodIdentity {
        cluster: "c".into(),
        node: "n".into(),
        namespace: "default".into(),
        pod: format!("job-{uid}"),
        pod_uid: uid.into(),
        job: "job".into(),
        job_uid: None,
        cronjob: None,
        attempt: 1,
        completion_index: None,
    }
}

/// A sealed batch of `records` lines of 10 bytes each, from stream offset `first`, held
/// compact as a following agent holds it (the shipper completes the lines).
fn sealed(uid: &str, first: u64, records: u64, complete: bool) -> Sealed {
    let meta = identity(uid).stream("main", 0);
    let encoder = Encoder::new(&meta);
    let mut batch = Batch::new(first);
    for n in 0..records {
        let offset = first + n * 10;
        let rec = Record {
            ts: "2026-11-27T14:00:00Z",
            stream: StreamKind::Stdout,
            message: b"hello",
            offset,
            truncated: false,
        };
        batch.push(&encoder, &rec, offset + 10, true);
    }
    let end = first + records * 10;
    Sealed {
        meta: Arc::new(meta),
        batch,
        checkpoint: StreamCheckpoint {
            container: "main".into(),
            restart: 0,
            offset: end,
            file: None,
        },
        complete,
        gap: None,
    }
}

fn log_key(uid: &str, first: u64) -> String {
    identity(uid).stream("main", 0).log_key(first)
}

fn part_key(uid: &str, first: u64) -> String {
    identity(uid).stream("main", 0).part_key(first)
}

fn head_key(uid: &str) -> String {
    identity(uid).manifest_key()
}

fn head(r: &Rig, uid: &str) -> Manifest {
    serde_json::from_slice(&r.mem.object(&head_key(uid)).expect("a manifest head")).unwrap()
}

fn checkpoint(r: &Rig, uid: &str) -> Option<u64> {
    let state = r.state.load(uid)?;
    state.stream("main", 0).map(|c| c.offset)
}

/// Ship `work` through a shipper and wait until everything is committed (the channel closed).
async fn ship(r: &Rig, work: Vec<Work>) {
    let (tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(r.shipper.clone().run(rx));
    for w in work {
        tx.send(w).await.unwrap();
    }
    drop(tx);
    run.await.unwrap().unwrap();
}

fn batch(s: Sealed) -> Work {
    Work::Batch(Box::new(s))
}

/// Waits for `cond`, checking every 20 ms; fails the test after a minute rather than hang.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_lands_then_its_manifest_part_then_the_head() {
    let r = rig(HOUR);
    ship(&r, vec![batch(sealed("u1", 0, 3, false))]).await;
    assert_eq!(
        r.mem.landed(),
        [log_key("u1", 0), part_key("u1", 0), head_key("u1")],
        "the object before the part that lists it, the part before the head that counts it"
    );
    let lines = decode_part(&r.mem.object(&part_key("u1", 0)).unwrap()).unwrap();
    let entry = lines[0].object().expect("the object's entry");
    let gz = r.mem.object(&entry.key).unwrap();
    assert_eq!(entry.key, log_key("u1", 0));
    assert_eq!(entry.sha256, hex::encode(Sha256::digest(&gz)));
    assert_eq!(
        (entry.first_offset, entry.end_offset, entry.records),
        (0, 30, 3)
    );
    // Whole NDJSON lines, each with the stream's metadata, though the batch was held compact.
    let mut ndjson = Vec::new();
    crate::inflate::gunzip(&gz, &mut ndjson).unwrap();
    let records: Vec<serde_json::Value> = ndjson
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let offsets: Vec<u64> = records
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 10, 20]);
    for r in &records {
        assert_eq!(
            (&r["message"], &r["pod_uid"], &r["container"]),
            (&"hello".into(), &"u1".into(), &"main".into())
        );
    }
    let c = &head(&r, "u1").containers[0];
    assert_eq!((c.parts, c.object_count, c.end_offset), (1, 1, 30));
    assert_eq!(checkpoint(&r, "u1"), Some(30), "then the checkpoint");
    assert!(!r.state.load("u1").unwrap().manifest_pending);
}

#[tokio::test]
async fn a_store_failure_spools_the_batch_and_the_checkpoint_advances() {
    let r = rig(HOUR);
    r.mem.set_down(true);
    ship(&r, vec![batch(sealed("u1", 0, 3, false))]).await;
    assert!(r.mem.landed().is_empty());
    assert!(r.spool.holds_pod("u1"), "the batch waits in the spool");
    assert_eq!(checkpoint(&r, "u1"), Some(30), "reading goes on past it");
    // The store answers again: the uploader lands it, and only then lists it.
    r.mem.set_down(false);
    r.shipper.finish();
    r.shipper.clone().upload_spool().await.unwrap();
    assert_eq!(
        r.mem.landed(),
        [log_key("u1", 0), part_key("u1", 0), head_key("u1")]
    );
    assert!(r.spool.is_empty());
    assert_eq!(head(&r, "u1").containers[0].end_offset, 30);
}

#[tokio::test]
async fn a_manifest_not_due_waits_and_is_written_when_it_is() {
    let r = rig(HOUR);
    // The first batch of a pod writes its manifest at once; the next one's line waits.
    ship(
        &r,
        vec![
            batch(sealed("u1", 0, 3, false)),
            batch(sealed("u1", 30, 2, false)),
        ],
    )
    .await;
    assert_eq!(
        r.mem.landed(),
        [
            log_key("u1", 0),
            part_key("u1", 0),
            head_key("u1"),
            log_key("u1", 30)
        ]
    );
    let state = r.state.load("u1").unwrap();
    assert!(
        state.manifest_pending,
        "the state file knows the manifest is behind"
    );
    assert_eq!(state.find("main", 0).unwrap().pending.len(), 1);
    r.shipper.write_owed_manifests(false).await.unwrap();
    assert_eq!(r.mem.landed().len(), 4, "not due within the interval");
    // The stream ends: due now, whatever the interval.
    ship(&r, vec![batch(sealed("u1", 50, 1, true))]).await;
    let landed = r.mem.landed();
    assert_eq!(
        landed[4..],
        [log_key("u1", 50), part_key("u1", 30), head_key("u1")]
    );
    let part = decode_part(&r.mem.object(&part_key("u1", 30)).unwrap()).unwrap();
    let spans: Vec<(u64, u64)> = part.iter().map(PartLine::span).collect();
    assert_eq!(
        spans,
        [(30, 50), (50, 60)],
        "both waiting lines in one part"
    );
    let c = &head(&r, "u1").containers[0];
    assert_eq!((c.parts, c.object_count, c.end_offset), (2, 3, 60));
    assert!(c.complete);
    assert!(!r.state.load("u1").unwrap().manifest_pending);

    // With a short interval, the owed manifest is due once it has passed.
    let r = rig(Duration::from_millis(50));
    ship(
        &r,
        vec![
            batch(sealed("u2", 0, 1, false)),
            batch(sealed("u2", 10, 1, false)),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.shipper.write_owed_manifests(false).await.unwrap();
    assert_eq!(head(&r, "u2").containers[0].object_count, 2);
    assert!(!r.state.load("u2").unwrap().manifest_pending);
}

#[tokio::test]
async fn a_pod_gone_is_forgotten_only_once_everything_of_it_landed() {
    let r = rig(HOUR);
    let uploader = tokio::spawn(r.shipper.clone().upload_spool());
    let (tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(r.shipper.clone().run(rx));
    r.mem.set_down(true);
    tx.send(batch(sealed("u1", 0, 3, true))).await.unwrap();
    tx.send(Work::PodGone("u1".into())).await.unwrap();
    // Another pod's batch after it: once it is committed, the shipper has seen the pod go.
    tx.send(batch(sealed("u2", 0, 1, false))).await.unwrap();
    until("u2 spooled", || checkpoint(&r, "u2").is_some()).await;
    assert!(r.spool.holds_pod("u1"));
    assert_eq!(
        checkpoint(&r, "u1"),
        Some(30),
        "a gone pod with a batch in the spool keeps its state"
    );
    r.mem.set_down(false);
    until("u1 forgotten", || r.state.load("u1").is_none()).await;
    // Forgotten only after its object and manifest landed.
    let landed = r.mem.landed();
    for key in [log_key("u1", 0), part_key("u1", 0), head_key("u1")] {
        assert!(
            landed.contains(&key),
            "{key} landed before the pod was forgotten"
        );
    }
    assert!(head(&r, "u1").containers[0].complete);
    assert!(!r.dir.path().join("pods/u1.json").exists());
    drop(tx);
    run.await.unwrap().unwrap();
    r.shipper.finish();
    uploader.await.unwrap().unwrap();
    assert_eq!(
        checkpoint(&r, "u2"),
        Some(10),
        "a pod still there keeps its state"
    );
}
