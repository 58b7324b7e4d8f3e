//! The batch stage: a stream's encoded records accumulate in one open batch, closed on size,
//! age, end of input or container end.

use crate::compress::Squeezed;
use crate::encode::Encoder;
use crate::parse::Record;
use std::sync::{Arc, Mutex};
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
    } else if let Some(small) = spares.iter_mut().min_by_key(|b| b.capacity()) {
        // The biggest are worth keeping: small ones (a live stream's) are cheap to allocate.
        if small.capacity() < buf.capacity() {
            *small = buf;
        }
    }
}

pub fn drop_spares() {
    let dropped = std::mem::take(&mut *spares());
    drop(dropped);
}

/// A batch's whole NDJSON lines from its `data`: compact lines (with their stream's `suffix`)
/// are completed into another buffer, and theirs is recycled.
pub fn whole(data: Vec<u8>, suffix: Option<&[u8]>, records: u64) -> Vec<u8> {
    let Some(suffix) = suffix else {
        return data;
    };
    let len = data.len() + records as usize * (suffix.len() - 1);
    let mut out = spare_buffer(len).unwrap_or_else(|| Vec::with_capacity(len));
    crate::encode::expand(&data, suffix, &mut out);
    recycle(data);
    out
}

/// An open batch of one stream. It always starts where the previous one ended, so its first
/// offset (the object key) is the stream's checkpoint when it was opened.
#[derive(Debug)]
pub struct Batch {
    /// Whole NDJSON lines, or compact ones (`Encoder::encode_compact`) when `suffix` is set.
    pub data: Vec<u8>,
    /// Compact batches: the stream metadata `expand` adds to each line when compressing.
    pub suffix: Option<Arc<[u8]>>,
    /// Its first lines, already compressed ([`Batch::squeeze`]); `data` holds the lines since.
    pub squeezed: Squeezed,
    pub squeezed_records: u64,
    /// When it was first squeezed.
    pub squeezed_at: Option<Instant>,
    /// When the first line of `data` came (its first record, or the first after a squeeze):
    /// over the memory budget, the lines that waited longest are squeezed first.
    pub data_since: Instant,
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
            suffix: None,
            squeezed: Squeezed::default(),
            squeezed_records: 0,
            squeezed_at: None,
            data_since: now,
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

    /// Bytes of its whole NDJSON lines (what is compressed), compact or not.
    pub fn len(&self) -> usize {
        let added = self.suffix.as_ref().map_or(0, |s| s.len() - 1);
        let held = self.data.len() + self.unsqueezed() as usize * added;
        held + self.squeezed.raw_len() as usize
    }

    /// Bytes it holds in memory.
    pub fn held(&self) -> usize {
        self.data.len() + self.squeezed.len()
    }

    /// Records in `data`.
    pub fn unsqueezed(&self) -> u64 {
        self.records - self.squeezed_records
    }

    /// Compress the lines held so far (as whole lines) and keep the batch open: a live agent
    /// over its memory budget does this rather than close small objects, so a batch still
    /// closes on age, size or the stream's end (`compress::Squeezed`).
    pub fn squeeze(&mut self, level: u32) {
        if self.data.is_empty() {
            return;
        }
        // What comes next is held in a buffer the size of what was: a squeezed batch's stream
        // is one of many sharing the budget, not one filling `max_bytes`.
        let next = Vec::with_capacity(self.data.len());
        let data = std::mem::replace(&mut self.data, next);
        let lines = whole(data, self.suffix.as_deref(), self.unsqueezed());
        self.squeezed.push(&lines, level);
        recycle(lines);
        self.squeezed_records = self.records;
        self.squeezed_at.get_or_insert_with(Instant::now);
    }

    /// Add a record that ends (its last physical line included) at stream offset `end`;
    /// `compact`: held without the stream's metadata until `whole` (one form per batch).
    pub fn push(&mut self, enc: &Encoder, rec: &Record<'_>, end: u64, compact: bool) {
        if self.records == 0 {
            self.opened = Instant::now();
            self.touched = self.opened;
            self.data_since = self.opened;
            self.first_ts.push_str(rec.ts);
            self.suffix = compact.then(|| enc.suffix().clone());
        }
        debug_assert_eq!(compact, self.suffix.is_some(), "one form per batch");
        if self.data.is_empty() && self.records > 0 {
            self.data_since = Instant::now();
        }
        if compact {
            enc.encode_compact(rec, &mut self.data);
        } else {
            enc.encode(rec, &mut self.data);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::StreamKind;

    /// The same records pushed whole and compact.
    fn both(messages: &[(Vec<u8>, bool)]) -> (Batch, Batch) {
        let enc = Encoder::new(&crate::encode::tests::meta());
        let (mut whole, mut compact) = (Batch::new(0), Batch::new(0));
        for (i, (message, truncated)) in messages.iter().enumerate() {
            let rec = record(i, message, *truncated);
            whole.push(&enc, &rec, i as u64 * 100 + 99, false);
            compact.push(&enc, &rec, i as u64 * 100 + 99, true);
        }
        (whole, compact)
    }

    fn record(i: usize, message: &[u8], truncated: bool) -> Record<'_> {
        Record {
            ts: "2026-12-07T19:02:12.123456789Z",
            stream: if i.is_multiple_of(2) {
                StreamKind::Stdout
            } else {
                StreamKind::Stderr
            },
            message,
            offset: i as u64 * 100,
            truncated,
        }
    }

    proptest::proptest! {
        /// A compact batch holds less and completes to exactly the lines of a whole one:
        /// the object does not depend on how the agent held it.
        #[test]
        fn a_compact_batch_completes_to_the_whole_lines(
            messages in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..120), proptest::bool::ANY),
                1..40,
            )
        ) {
            let (whole, compact) = both(&messages);
            proptest::prop_assert!(compact.data.len() < whole.data.len());
            proptest::prop_assert_eq!(compact.len(), whole.data.len());
            proptest::prop_assert_eq!(whole.len(), whole.data.len());
            let completed = super::whole(compact.data.clone(), compact.suffix.as_deref(), compact.records);
            proptest::prop_assert_eq!(&completed, &whole.data);
            let lines = completed.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            for line in lines {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                proptest::prop_assert_eq!(&v["pod"], "p-abcde");
            }
        }
    }

    proptest::proptest! {
        /// However often a batch is squeezed while it fills, its object holds exactly the lines
        /// of one compressed whole, and `len` is their size throughout.
        #[test]
        fn a_squeezed_batch_closes_to_the_same_lines(
            messages in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..200), proptest::bool::ANY),
                1..40,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..6),
            compact in proptest::bool::ANY,
        ) {
            let enc = Encoder::new(&crate::encode::tests::meta());
            let (mut b, mut whole) = (Batch::new(0), Batch::new(0));
            for (i, (message, truncated)) in messages.iter().enumerate() {
                let rec = record(i, message, *truncated);
                b.push(&enc, &rec, i as u64 * 100 + 99, compact);
                whole.push(&enc, &rec, i as u64 * 100 + 99, false);
                if cuts.contains(&i) {
                    b.squeeze(1);
                    proptest::prop_assert!(b.data.is_empty() && b.data.capacity() > 0);
                    proptest::prop_assert_eq!(b.held(), b.squeezed.len());
                    proptest::prop_assert!(b.squeezed_at.is_some());
                }
                proptest::prop_assert_eq!(b.len(), whole.data.len());
            }
            proptest::prop_assert_eq!(b.len(), whole.data.len());
            proptest::prop_assert_eq!(b.records, whole.records);
            let rest = super::whole(std::mem::take(&mut b.data), b.suffix.as_deref(), b.unsqueezed());
            let gz = std::mem::take(&mut b.squeezed).finish(&rest, 1);
            let mut out = Vec::new();
            crate::inflate::gunzip(&gz, &mut out).unwrap();
            proptest::prop_assert_eq!(out, whole.data);
        }
    }

    #[test]
    fn a_whole_batch_is_shipped_as_it_is_held() {
        let (whole, _) = both(&[(b"one".to_vec(), false), (b"two\ntwo".to_vec(), true)]);
        let data = whole.data.clone();
        assert_eq!(super::whole(whole.data, None, whole.records), data);
        assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 2);
    }
}
