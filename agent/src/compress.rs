//! The compress stage: a whole batch to one gzip member (plain gzip, readable by every tool).
//!
//! Compression is most of the agent's CPU, and batches are whole buffers, so this uses
//! libdeflate's one-shot compressor rather than a streaming deflate: at the same level it is
//! about twice as fast as zlib-rs on our NDJSON and writes smaller output (figures in
//! docs/performance.md, from `cargo bench --bench hot_path`). Compressors are pooled: each
//! holds a few hundred KiB of match-finder state that is worth keeping between batches.

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
}
