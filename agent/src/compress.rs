//! The compress stage: a whole batch to one gzip member (plain gzip, readable by every tool).
//!
//! Compression is most of the agent's CPU, and batches are whole buffers, so this uses
//! libdeflate's one-shot compressor rather than a streaming deflate: at the same level it is
//! about twice as fast as zlib-rs on our NDJSON and writes smaller output (figures in
//! docs/performance.md, from `cargo bench --bench hot_path`). Compressors are pooled: each
//! holds a few hundred KiB of match-finder state that is worth keeping between batches.
//!
//! A live agent over its memory budget squeezes a batch's lines while the batch stays open
//! ([`Squeezed`]): raw deflate chunks, each ended by a sync flush (byte-aligned, not final),
//! which the close completes into one gzip member. One member, because not every reader of a
//! bucket reads concatenated members. libdeflate compresses whole streams only, so those chunks
//! go through zlib-rs.

use flate2::{Compress, Compression, FlushCompress, Status};
use libdeflater::{CompressionLvl, Compressor};
use std::sync::Mutex;

/// Idle compressors by level; at most one per concurrent compression.
static POOL: Mutex<Vec<(u32, Compressor)>> = Mutex::new(Vec::new());

pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut c = take(level);
    // Log text compresses 3-15x: try a buffer of half the input before the worst-case bound,
    // so the common case does not reserve (and touch) the input's size again.
    let guess = data.len() / 2 + 1024;
    let out = compress_into(&mut c, data, guess).unwrap_or_else(|| {
        let bound = c.gzip_compress_bound(data.len());
        compress_into(&mut c, data, bound).expect("the bound always fits")
    });
    give_back(level, c);
    out
}

fn compress_into(c: &mut Compressor, data: &[u8], capacity: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; capacity];
    let n = c.gzip_compress(data, &mut out).ok()?;
    out.truncate(n);
    out.shrink_to_fit();
    Some(out)
}

fn take(level: u32) -> Compressor {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    match pool.iter().position(|(l, _)| *l == level) {
        Some(i) => pool.swap_remove(i).1,
        None => {
            // Config validation keeps the level within 0-9.
            let lvl = CompressionLvl::new(level as i32).unwrap_or_default();
            Compressor::new(lvl)
        }
    }
}

fn give_back(level: u32, c: Compressor) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < compressors() {
        pool.push((level, c));
    }
}

/// Lines of an open batch already compressed: raw deflate chunks, each complete in itself (no
/// reference into another chunk) and ended by a sync flush, with the CRC-32 and size of what
/// they hold. `finish` appends the rest of the batch as the final chunk and wraps the whole
/// in a gzip header and trailer: the object is one ordinary gzip member, whose bytes depend on
/// when the batch was squeezed (its lines do not).
#[derive(Default)]
pub struct Squeezed {
    body: Vec<u8>,
    raw: u64,
    crc: crc32fast::Hasher,
}

impl std::fmt::Debug for Squeezed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Squeezed")
            .field("bytes", &self.body.len())
            .field("raw", &self.raw)
            .finish()
    }
}

/// The gzip header libdeflate writes too: no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Squeezed {
    /// Compress `data` (whole lines) as the next chunk.
    pub fn push(&mut self, data: &[u8], level: u32) {
        if data.is_empty() {
            return;
        }
        // Through a scratch buffer, so that what is held is the exact size (a batch may be
        // held for minutes, thousands at once).
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            deflate_raw(data, level, FlushCompress::Sync, scratch);
            self.body.reserve_exact(scratch.len());
            self.body.extend_from_slice(scratch);
            if scratch.capacity() > SCRATCH_KEPT {
                *scratch = Vec::new();
            }
        });
        self.crc.update(data);
        self.raw += data.len() as u64;
    }

    /// Compressed bytes held.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw == 0
    }

    /// Uncompressed bytes held.
    pub fn raw_len(&self) -> u64 {
        self.raw
    }

    /// The gzip member of everything pushed and then `rest`.
    pub fn finish(mut self, rest: &[u8], level: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(GZIP_HEADER.len() + self.body.len() + rest.len() / 2 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        out.append(&mut self.body);
        deflate_raw(rest, level, FlushCompress::Finish, &mut out);
        self.crc.update(rest);
        let size = self.raw + rest.len() as u64;
        out.extend_from_slice(&self.crc.finalize().to_le_bytes());
        // ISIZE is the size modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.shrink_to_fit();
        out
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
const SCRATCH_KEPT: usize = 1 << 20;

/// Idle raw deflate streams by level (zlib-rs keeps ~300 KiB of state each).
static RAW_POOL: Mutex<Vec<(u32, Compress)>> = Mutex::new(Vec::new());

/// `data` as one raw deflate chunk appended to `out`: a fresh stream ended by `flush` (a sync
/// flush leaves it open and byte-aligned; finish ends it with a final block).
fn deflate_raw(data: &[u8], level: u32, flush: FlushCompress, out: &mut Vec<u8>) {
    let pooled = {
        let mut pool = RAW_POOL.lock().unwrap_or_else(|e| e.into_inner());
        let i = pool.iter().position(|(l, _)| *l == level);
        i.map(|i| pool.swap_remove(i).1)
    };
    let mut c = pooled.unwrap_or_else(|| Compress::new(Compression::new(level), false));
    c.reset();
    loop {
        out.reserve(data.len() / 2 + 64);
        let read = c.total_in() as usize;
        let status = c
            .compress_vec(&data[read..], out, flush)
            .expect("deflate into memory does not fail");
        let done = c.total_in() as usize == data.len()
            && match flush {
                // A sync flush is complete once it returns with output room to spare (zlib's rule).
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => out.len() < out.capacity(),
            };
        if done {
            break;
        }
    }
    let mut pool = RAW_POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < compressors() + 1 {
        pool.push((level, c));
    }
}

/// Batches compressed at once. The follower is one thread, and one compressor at the default
/// level keeps up with about two thirds of what it reads, so two suffice on any node; on two
/// cores one leaves the other core to the follower (measured in docs/performance.md).
/// Asked once: the standard library reads the cgroup's CPU quota files at every call, and
/// `give_back` asks after every batch.
pub fn compressors() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        cores.saturating_sub(1).clamp(1, 2)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_through_a_standard_gzip_reader() {
        let text = b"{\"a\":1}\n".repeat(1000);
        for level in [0, 1, 6, 9] {
            let gz = super::gzip(&text, level);
            if level > 0 {
                assert!(gz.len() < text.len() / 10, "level {level}");
            }
            assert_eq!(gunzip(&gz), text, "level {level}");
        }
    }

    #[test]
    fn incompressible_input_falls_back_to_the_bound() {
        // xorshift bytes do not compress: the half-size guess fails and the bound is used.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let gz = super::gzip(&noise, 6);
        assert!(gz.len() > noise.len());
        assert_eq!(gunzip(&gz), noise);
    }

    #[test]
    fn empty_input_is_a_valid_gzip_member() {
        assert_eq!(gunzip(&super::gzip(b"", 6)), b"");
    }

    fn lines(from: usize, n: usize) -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| {
                format!("{{\"n\":{i},\"message\":\"line {i} of the job\"}}\n").into_bytes()
            })
            .collect()
    }

    #[test]
    fn squeezed_chunks_finish_as_one_member_of_all_the_lines() {
        for level in [0, 1, 6, 9] {
            let mut sq = super::Squeezed::default();
            let (a, b, rest) = (lines(0, 500), lines(500, 1), lines(501, 300));
            sq.push(&a, level);
            sq.push(b"", level);
            sq.push(&b, level);
            assert_eq!(sq.raw_len(), (a.len() + b.len()) as u64);
            if level > 0 {
                assert!(
                    sq.len() < a.len() / 4,
                    "level {level}: {} bytes held",
                    sq.len()
                );
            }
            let gz = sq.finish(&rest, level);
            // One member: a single-member decoder reads every line, and so does libdeflate
            // (the reading side's one-call path), which checks the CRC and size.
            let all = [a, b, rest].concat();
            assert_eq!(gunzip(&gz), all, "level {level}");
            let mut out = vec![0; all.len()];
            let n = libdeflater::Decompressor::new().gzip_decompress(&gz, &mut out);
            assert_eq!(n.ok(), Some(all.len()), "level {level}");
            assert_eq!(out, all, "level {level}");
        }
    }

    #[test]
    fn a_squeezed_batch_with_nothing_after_it_is_still_whole() {
        let mut sq = super::Squeezed::default();
        let a = lines(0, 100);
        sq.push(&a, 1);
        assert_eq!(gunzip(&sq.finish(b"", 1)), a);
        assert_eq!(gunzip(&super::Squeezed::default().finish(b"", 1)), b"");
    }
}
