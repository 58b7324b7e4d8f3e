//! The file-following core on a node laid out as the kubelet lays it out: a pod folder, a
//! container folder, `N.log` written by appending, rotation by renaming the live file and gzip
//! of older rotated files into new inodes, deletion of whole pod folders, copytruncate, and
//! restarts of the agent in between. No store and no metadata source: streams in, records and
//! positions out.

use super::*;
use crate::contract::StreamMeta;
use crate::meta::PodDir;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const POD: &str = "default_job-abcde_uid-1";

/// CRI lines `line i` for each i, one nanosecond apart.
fn lines(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| format!("2026-11-27T14:00:00.{i:09}Z stdout F line {i}\n"))
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// The kubelet's rotation: gzip every rotated file not compressed yet (new inode, the plain one
/// removed), then rename the live file and let the runtime open a new one.
fn rotate(dir: &Path, stamp: &str) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("0.log.") && !name.ends_with(".gz") {
            let data = std::fs::read(e.path()).unwrap();
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&data)).unwrap();
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::rename(dir.join("0.log"), dir.join(format!("0.log.{stamp}"))).unwrap();
    std::fs::write(dir.join("0.log"), "").unwrap();
}

struct Node {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    ctx: TailContext,
}

impl Node {
    fn new() -> Node {
        Node::with_max_line(1 << 20)
    }

    fn with_max_line(max_line: usize) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let dir = root.join(POD).join("main");
        std::fs::create_dir_all(&dir).unwrap();
        let ctx = TailContext::new(vec![root.clone()], max_line, 4 << 20, Arc::default());
        Node {
            _tmp: tmp,
            root,
            dir,
            ctx,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    fn tail(&self, cp: Option<&StreamCheckpoint>) -> StreamTail {
        let pod = PodDir::parse(POD).unwrap();
        let files = pod_streams(&pod, &self.root.join(POD)).remove(0);
        let meta = StreamMeta {
            cluster: "c".into(),
            node: "n".into(),
            namespace: pod.namespace.clone(),
            pod: pod.pod.clone(),
            pod_uid: pod.uid.clone(),
            container: "main".into(),
            restart: 0,
            job: "job".into(),
            job_uid: None,
            cronjob: None,
            attempt: 1,
            completion_index: None,
        };
        StreamTail::new(meta, &files, cp, &self.ctx.roots)
    }

    /// Pump until the stream is idle or over: (offset, message) of each record read, the
    /// batches sealed on the way plus the open one sealed now, and how the pump ended.
    fn pump(&mut self, tail: &mut StreamTail) -> (Vec<(u64, String)>, Sealed, PumpState) {
        let mut sealed = Vec::new();
        let state = loop {
            match tail.pump(&mut self.ctx, 1 << 20, &mut sealed) {
                PumpState::More => continue,
                state => break state,
            }
        };
        let complete = state == PumpState::Ended;
        sealed.push(tail.seal(complete));
        (records(&sealed), sealed.pop().unwrap(), state)
    }

    /// Everything readable now, as one sealed batch.
    fn read(&mut self, tail: &mut StreamTail) -> (Vec<(u64, String)>, Sealed) {
        let (records, sealed, _) = self.pump(tail);
        (records, sealed)
    }

    /// A stream whose `0.log` got lines `0..n`, read to its end: its tail and the batch sealed.
    fn read_first(&mut self, n: u32) -> (StreamTail, Sealed) {
        append(&self.log(), &lines(0..n));
        let mut tail = self.tail(None);
        let (first, sealed) = self.read(&mut tail);
        assert_eq!(messages(&first), expected(0..n));
        (tail, sealed)
    }
}

/// (offset, message) of every record of the batches.
fn records(sealed: &[Sealed]) -> Vec<(u64, String)> {
    sealed
        .iter()
        .flat_map(|s| s.batch.data.split(|&b| b == b'\n'))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            (
                v["offset"].as_u64().unwrap(),
                v["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn messages(records: &[(u64, String)]) -> Vec<String> {
    records.iter().map(|(_, m)| m.clone()).collect()
}

fn expected(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("line {i}")).collect()
}

/// The stream offset of `line i` when lines 0.. were written in order: offsets count the
/// bytes of the stream, across files.
fn offset_of(i: u32) -> u64 {
    lines(0..i).len() as u64
}

fn offsets_follow_the_bytes(records: &[(u64, String)]) {
    for (off, msg) in records {
        let i: u32 = msg.strip_prefix("line ").unwrap().parse().unwrap();
        assert_eq!(*off, offset_of(i), "{msg}");
    }
}

// ---------------------------------------------------------------- rotation, live

#[test]
fn the_rotated_file_is_read_to_its_end_before_the_new_one() {
    let mut node = Node::new();
    let (mut tail, _) = node.read_first(10);
    // The runtime wrote more, the kubelet renamed the file, the runtime still wrote to the old
    // inode before it reopened, then wrote to the new 0.log.
    append(&node.log(), &lines(10..15));
    std::fs::rename(node.log(), node.dir.join("0.log.20261127-140001")).unwrap();
    append(&node.dir.join("0.log.20261127-140001"), &lines(15..20));
    append(&node.log(), &lines(20..30));
    let (rest, sealed, state) = node.pump(&mut tail);
    assert_eq!(messages(&rest), expected(10..30), "in order, nothing twice");
    offsets_follow_the_bytes(&rest);
    assert_eq!(state, PumpState::Idle);
    assert_eq!(sealed.checkpoint.offset, offset_of(30));
}

#[test]
fn a_torn_last_line_of_a_rotated_file_is_still_a_line() {
    let mut node = Node::new();
    let text = lines(0..2);
    // The runtime's last write before the rotation lacks its newline.
    append(&node.log(), text.trim_end_matches('\n'));
    let mut tail = node.tail(None);
    let (first, _) = node.read(&mut tail);
    assert_eq!(messages(&first), expected(0..1), "a partial line waits");
    rotate(&node.dir, "20261127-140001");
    append(&node.log(), &lines(2..3));
    let (rest, sealed) = node.read(&mut tail);
    assert_eq!(messages(&rest), expected(1..3));
    assert_eq!(
        rest[1].0,
        text.len() as u64 - 1,
        "the next file starts after it"
    );
    assert_eq!(
        sealed.checkpoint.offset,
        text.len() as u64 - 1 + lines(2..3).len() as u64
    );
}

#[test]
fn rotations_while_reading_keep_one_offset_sequence() {
    let mut node = Node::new();
    std::fs::write(node.log(), "").unwrap();
    let mut tail = node.tail(None);
    let mut all = Vec::new();
    for (n, stamp) in ["20261127-140001", "20261127-140002", "20261127-140003"]
        .iter()
        .enumerate()
    {
        let n = n as u32;
        append(&node.log(), &lines(n * 10..n * 10 + 10));
        all.extend(node.read(&mut tail).0);
        rotate(&node.dir, stamp);
    }
    append(&node.log(), &lines(30..35));
    all.extend(node.read(&mut tail).0);
    assert_eq!(messages(&all), expected(0..35));
    offsets_follow_the_bytes(&all);
}

// ---------------------------------------------------------------- truncation

#[test]
fn after_copytruncate_offsets_go_on_and_what_was_read_stays() {
    let mut node = Node::new();
    let (mut tail, _) = node.read_first(10);
    // copytruncate: the file is cut to nothing in place and written again from its start.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(node.log())
        .unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&node.log(), &lines(10..12));
    let (rest, sealed) = node.read(&mut tail);
    assert_eq!(messages(&rest), expected(10..12));
    offsets_follow_the_bytes(&rest);
    assert_eq!(sealed.checkpoint.offset, offset_of(12));
    let mark = sealed.checkpoint.file.expect("a file position");
    assert_eq!(
        mark.base,
        offset_of(10),
        "the file now starts where reading had got to"
    );
}

// ---------------------------------------------------------------- deletion

#[test]
fn a_deleted_pod_folder_is_read_to_the_end_through_the_open_file() {
    let mut node = Node::new();
    append(&node.log(), &lines(0..5));
    let mut tail = node.tail(None);
    tail.open_early(&node.ctx);
    assert!(tail.is_open());
    // Its last lines, then the kubelet removes the pod: folder, files, everything.
    append(&node.log(), &lines(5..10));
    std::fs::remove_dir_all(node.root.join(POD)).unwrap();
    let (read, sealed, state) = node.pump(&mut tail);
    assert_eq!(messages(&read), expected(0..10), "nothing lost");
    assert_eq!(
        state,
        PumpState::Ended,
        "deleted, read to its end, not replaced"
    );
    assert!(sealed.complete);
    assert_eq!(sealed.checkpoint.offset, offset_of(10));
}

#[test]
fn a_stream_is_not_over_while_a_new_log_replaced_the_deleted_one() {
    let mut node = Node::new();
    append(&node.log(), &lines(0..5));
    let mut tail = node.tail(None);
    tail.open_early(&node.ctx);
    std::fs::remove_file(node.log()).unwrap();
    append(&node.log(), &lines(5..8));
    let (read, _, state) = node.pump(&mut tail);
    assert_eq!(messages(&read), expected(0..8));
    offsets_follow_the_bytes(&read);
    assert_eq!(state, PumpState::Idle);
    std::fs::remove_file(node.log()).unwrap();
    let (rest, _, state) = node.pump(&mut tail);
    assert!(rest.is_empty());
    assert_eq!(state, PumpState::Ended);
}

// ---------------------------------------------------------------- backfill

#[test]
fn a_backfill_reads_gz_and_plain_rotated_files_oldest_first() {
    let mut node = Node::new();
    // As the kubelet leaves a stream: two gzipped rotations, the newest rotation plain, the
    // live file.
    let gz1 = gzip(lines(0..10).as_bytes());
    let gz2 = gzip(lines(10..20).as_bytes());
    std::fs::write(node.dir.join("0.log.20261127-140001.gz"), &gz1).unwrap();
    std::fs::write(node.dir.join("0.log.20261127-140002.gz"), &gz2).unwrap();
    std::fs::write(node.dir.join("0.log.20261127-140003"), lines(20..30)).unwrap();
    append(&node.log(), &lines(30..35));
    let mut tail = node.tail(None);
    let planned = tail.bytes_to_read();
    let on_disk = (gz1.len() + gz2.len() + lines(20..35).len()) as u64;
    assert_eq!(
        planned, on_disk,
        "gzip files count at their compressed size"
    );
    let (read, sealed) = node.read(&mut tail);
    assert_eq!(messages(&read), expected(0..35));
    offsets_follow_the_bytes(&read);
    assert_eq!(sealed.checkpoint.offset, offset_of(35));
    assert_eq!(node.ctx.metrics.bytes_read.load(Relaxed), offset_of(35));
}

#[test]
fn a_backfill_resumed_by_offset_alone_skips_what_landed() {
    let mut node = Node::new();
    std::fs::write(
        node.dir.join("0.log.20261127-140001.gz"),
        gzip(lines(0..10).as_bytes()),
    )
    .unwrap();
    append(&node.log(), &lines(10..20));
    // A manifest of an agent without file positions: only the offset is known.
    let cp = StreamCheckpoint {
        container: "main".into(),
        restart: 0,
        offset: offset_of(15),
        file: None,
    };
    let mut tail = node.tail(Some(&cp));
    let (read, _) = node.read(&mut tail);
    assert_eq!(messages(&read), expected(15..20));
    offsets_follow_the_bytes(&read);
}

// ---------------------------------------------------------------- partial lines

#[test]
fn a_line_written_in_pieces_is_one_record_at_its_start_offset() {
    let mut node = Node::new();
    let (mut tail, _) = node.read_first(1);
    let line = lines(1..2);
    let (head, rest) = line.split_at(20);
    append(&node.log(), head);
    let (none, sealed) = node.read(&mut tail);
    assert!(none.is_empty(), "no record for half a line");
    assert_eq!(
        sealed.checkpoint.offset,
        offset_of(1),
        "nor a checkpoint past it"
    );
    append(&node.log(), rest);
    let (read, _) = node.read(&mut tail);
    assert_eq!(read, [(offset_of(1), "line 1".to_string())]);
}

#[test]
fn lines_longer_than_a_read_are_carried_across_reads() {
    let mut node = Node::new();
    // Three lines of 300 KiB: each spans two or three reads of the 256 KiB buffer.
    let long = |c: char| {
        format!(
            "2026-11-27T14:00:00Z stdout F {}\n",
            c.to_string().repeat(300 << 10)
        )
    };
    let text: String = ['a', 'b', 'c'].map(long).concat();
    append(&node.log(), &text);
    let mut tail = node.tail(None);
    let (read, sealed) = node.read(&mut tail);
    assert_eq!(read.len(), 3);
    for ((off, msg), (i, c)) in read.iter().zip(['a', 'b', 'c'].into_iter().enumerate()) {
        assert_eq!(*off, (long('x').len() * i) as u64);
        assert!(msg.len() == 300 << 10 && msg.chars().all(|m| m == c));
    }
    assert_eq!(sealed.checkpoint.offset, text.len() as u64);
}

#[test]
fn a_line_past_the_limit_is_cut_and_the_next_one_read_whole() {
    let mut node = Node::with_max_line(1024);
    // Longer than a read (256 KiB) and than the limit plus its slack (64 KiB): the reader
    // keeps a prefix and skips the rest without holding it.
    let huge = format!("2026-11-27T14:00:00Z stdout F {}\n", "x".repeat(600 << 10));
    append(&node.log(), &huge);
    append(&node.log(), "2026-11-27T14:00:01Z stdout F after\n");
    let mut tail = node.tail(None);
    let (read, sealed) = node.read(&mut tail);
    assert_eq!(read.len(), 2, "{:?}", messages(&read));
    assert!(read[0].1.len() <= 1024 && read[0].1.starts_with("xxx"));
    assert_eq!(read[1], (huge.len() as u64, "after".to_string()));
    assert_eq!(
        sealed.checkpoint.offset,
        huge.len() as u64 + 36,
        "the cut remainder is skipped, not read again"
    );
}

// ---------------------------------------------------------------- restarts of the agent

#[test]
fn a_checkpointed_file_found_only_as_gz_resumes_exactly() {
    let mut node = Node::new();
    let (tail, sealed) = node.read_first(100);
    let cp = sealed.checkpoint;
    assert!(cp.file.as_ref().unwrap().fingerprint.is_some());
    drop(tail); // kill -9: the agent is gone
                // Written after the kill, then rotated twice: the checkpointed file is now only a .gz.
    append(&node.log(), &lines(100..150));
    rotate(&node.dir, "20261127-140001");
    append(&node.log(), &lines(150..200));
    rotate(&node.dir, "20261127-140011");
    append(&node.log(), &lines(200..250));
    let names: Vec<String> = std::fs::read_dir(&node.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.contains(&"0.log.20261127-140001.gz".to_string()));
    let mut tail = node.tail(Some(&cp));
    let (rest, sealed) = node.read(&mut tail);
    assert_eq!(
        messages(&rest),
        expected(100..250),
        "nothing lost, nothing twice"
    );
    assert_eq!(rest[0].0, cp.offset, "offsets continue the stream");
    assert_eq!(sealed.gap, None);
}

#[test]
fn a_checkpointed_file_deleted_while_down_is_a_gap() {
    let mut node = Node::new();
    let (tail, sealed) = node.read_first(100);
    let cp = sealed.checkpoint;
    drop(tail);
    append(&node.log(), &lines(100..150));
    rotate(&node.dir, "20261127-140001");
    append(&node.log(), &lines(150..200));
    rotate(&node.dir, "20261127-140002");
    append(&node.log(), &lines(200..250));
    // The kubelet's max-files limit removed the oldest rotated file: the checkpointed one.
    std::fs::remove_file(node.dir.join("0.log.20261127-140001.gz")).unwrap();
    let mut tail = node.tail(Some(&cp));
    let (rest, sealed) = node.read(&mut tail);
    assert_eq!(
        messages(&rest),
        expected(150..250),
        "everything still there"
    );
    let gap = sealed.gap.expect("the lost bytes are recorded");
    assert_eq!((gap.first_offset, gap.end_offset), (cp.offset, cp.offset));
    assert!(gap.reason.contains("deleted"), "{}", gap.reason);
}

#[test]
fn a_checkpoint_at_the_start_of_a_new_file_names_the_one_before() {
    let mut node = Node::new();
    let (mut tail, _) = node.read_first(10);
    // Rotated live: the old file is read to its end, the new one is still empty.
    rotate(&node.dir, "20261127-140001");
    let (_, sealed) = node.read(&mut tail);
    let cp = sealed.checkpoint;
    let mark = cp.file.clone().unwrap();
    assert_eq!(mark.base + lines(0..10).len() as u64, cp.offset);
    drop(tail);
    append(&node.log(), &lines(10..20));
    rotate(&node.dir, "20261127-140002");
    append(&node.log(), &lines(20..30));
    let mut tail = node.tail(Some(&cp));
    let (rest, _) = node.read(&mut tail);
    assert_eq!(messages(&rest), expected(10..30));
}

#[test]
fn a_restart_mid_file_resumes_after_the_checkpoint_in_the_same_inode() {
    let mut node = Node::new();
    let (tail, sealed) = node.read_first(10);
    drop(tail);
    append(&node.log(), &lines(10..20));
    let mut tail = node.tail(Some(&sealed.checkpoint));
    let (rest, _) = node.read(&mut tail);
    assert_eq!(messages(&rest), expected(10..20));
    offsets_follow_the_bytes(&rest);
}
