//! File identity by content. A container log file changes name when the kubelet rotates it
//! (`0.log` → `0.log.STAMP`) and changes inode when it compresses it (`→ 0.log.STAMP.gz`), and
//! a deleted file's inode may be reused; its first bytes stay the same, and a CRI log's first
//! line carries a nanosecond timestamp. So a checkpoint names its file by a digest of its first
//! bytes (as Vector's file source does), and a restarted agent finds that file among whatever
//! the kubelet left, whatever it is called now.
//!
//! Reads are positional (`pread`), so a fingerprint can be taken from a descriptor that is
//! being read sequentially elsewhere without moving its position.

use crate::contract::Fingerprint;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// How many leading bytes identify a file: a few CRI lines, timestamps included.
pub const FINGERPRINT_BYTES: usize = 1024;

/// The fingerprint of a file's first `min(len, limit)` bytes (decompressed for gzip); `None`
/// for an empty file, which nothing identifies yet.
pub fn take(file: &File, gz: bool, limit: usize) -> io::Result<Option<Fingerprint>> {
    let head = head(file, gz, limit.min(FINGERPRINT_BYTES))?;
    Ok((!head.is_empty()).then(|| Fingerprint {
        bytes: head.len() as u32,
        hash: digest(&head),
    }))
}

/// Whether the file starts with the bytes `fp` was taken from.
pub fn matches(file: &File, gz: bool, fp: &Fingerprint) -> bool {
    let want = fp.bytes as usize;
    match head(file, gz, want) {
        Ok(head) => head.len() == want && digest(&head) == fp.hash,
        Err(_) => false,
    }
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Up to `n` bytes from the start of the file's content.
fn head(file: &File, gz: bool, n: usize) -> io::Result<Vec<u8>> {
    let at = At { file, pos: 0 };
    let mut out = Vec::with_capacity(n);
    if gz {
        flate2::read::MultiGzDecoder::new(at)
            .take(n as u64)
            .read_to_end(&mut out)?;
    } else {
        at.take(n as u64).read_to_end(&mut out)?;
    }
    Ok(out)
}

/// A reader over a file by positional reads, from its own position.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_file_is_recognised_after_rename_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..3000)
            .flat_map(|i| format!("2026-11-27T14:00:00.{i:09}Z stdout F line {i}\n").into_bytes())
            .collect();
        let live = dir.path().join("0.log");
        std::fs::write(&live, &content[..600]).unwrap();
        let mut f = File::open(&live).unwrap();
        let fp = take(&f, false, 600).unwrap().unwrap();
        assert_eq!(fp.bytes, 600);
        // Reading elsewhere on the descriptor does not disturb it, nor it the reader.
        f.seek(io::SeekFrom::Start(100)).unwrap();
        assert!(matches(&f, false, &fp));
        assert_eq!(f.stream_position().unwrap(), 100);
        // The file grew, was renamed, then compressed into a new inode: still the same file.
        std::fs::write(&live, &content).unwrap();
        let rotated = dir.path().join("0.log.20261127-140000");
        std::fs::rename(&live, &rotated).unwrap();
        assert!(matches(&File::open(&rotated).unwrap(), false, &fp));
        let compressed = dir.path().join("0.log.20261127-140000.gz");
        std::fs::write(&compressed, gz(&content)).unwrap();
        assert!(matches(&File::open(&compressed).unwrap(), true, &fp));
        // Another file, a shorter one, and the gz read as plain are not.
        let other = dir.path().join("0.log");
        std::fs::write(&other, &content[1..]).unwrap();
        assert!(!matches(&File::open(&other).unwrap(), false, &fp));
        std::fs::write(&other, &content[..599]).unwrap();
        assert!(!matches(&File::open(&other).unwrap(), false, &fp));
        assert!(!matches(&File::open(&compressed).unwrap(), false, &fp));
        // A fingerprint covers at most FINGERPRINT_BYTES; an empty file has none.
        let full = take(&File::open(&rotated).unwrap(), false, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(full.bytes as usize, FINGERPRINT_BYTES);
        std::fs::write(&other, b"").unwrap();
        assert_eq!(
            take(&File::open(&other).unwrap(), false, 100).unwrap(),
            None
        );
    }
}
