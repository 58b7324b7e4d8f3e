//! The batch stage: a stream's encoded records accumulate in one open batch, closed on size,
//! age, end of input or container end.

use crate::encode::Encoder;
use crate::parse::Record;
use std::sync::Mutex;
use std::time::Instant;

/// Buffers of batches already compressed, for the next full-size batches. A fresh buffer of a
/// few MiB costs a page fault per 4 KiB written and an munmap when freed: about a sixth of the
/// agent's CPU in a backfill. Only streams that just filled a batch take one (a quiet stream
/// would keep the whole buffer resident for a few lines), and the follower drops the spares
/// when reading goes quiet, so an idle agent does not keep them.
static SPARES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const SPARES_KEPT: usize = 2;

fn spares() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    SPARES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A spare buffer of at least `capacity` bytes, if one is kept.
pub fn spare_buffer(capacity: usize) -> Option<Vec<u8>> {
    let mut spares = spares();
    let i = spares.iter().position(|b| b.capacity() >= capacity)?;
    Some(spares.swap_remove(i))
}

/// Keep a compressed batch's buffer for reuse (or free it when enough are kept).
pub fn recycle(mut buf: Vec<u8>) {
    buf.clear();
    let mut spares = spares();
    if spares.len() < SPARES_KEPT {
        spares.push(buf);
    }
}

pub fn drop_spares() {
    let dropped = std::mem::take(&mut *spares());
    drop(dropped);
}

/// An open batch of one stream. It always starts where the previous one ended, so its first
/// offset (the object key) is the stream's checkpoint when it was opened.
#[derive(Debug)]
pub struct Batch {
    pub data: Vec<u8>,
    pub first_offset: u64,
    /// Stream offset just past the last record (where the next batch starts).
    pub end_offset: u64,
    pub records: u64,
    pub first_ts: String,
    pub last_ts: String,
    /// When its first record came, and when the stream last grew (set by the follower once per
    /// read, not per record): the age and quiet deadlines count from these.
    pub opened: Instant,
    pub touched: Instant,
}

impl Batch {
    pub fn new(first_offset: u64) -> Batch {
        let now = Instant::now();
        Batch {
            data: Vec::new(),
            first_offset,
            end_offset: first_offset,
            records: 0,
            first_ts: String::new(),
            last_ts: String::new(),
            opened: now,
            touched: now,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Add a record that ends (its last physical line included) at stream offset `end`.
    pub fn push(&mut self, enc: &Encoder, rec: &Record<'_>, end: u64) {
        if self.records == 0 {
            self.opened = Instant::now();
            self.touched = self.opened;
            self.first_ts.push_str(rec.ts);
        }
        enc.encode(rec, &mut self.data);
        self.records += 1;
        self.end_offset = end;
        self.last_ts.clear();
        self.last_ts.push_str(rec.ts);
    }

    /// Move past bytes that produced no record (malformed lines, a skipped remainder) so the
    /// next batch and the checkpoint do not read them again.
    pub fn skip_to(&mut self, end: u64) {
        self.end_offset = self.end_offset.max(end);
    }

    /// Take the contents out, leaving an empty batch that starts where this one ended.
    pub fn take(&mut self) -> Batch {
        let next = Batch::new(self.end_offset);
        std::mem::replace(self, next)
    }
}
