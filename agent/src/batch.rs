//! The batch stage: a stream's encoded records accumulate in one open batch, closed on size,
//! age, end of input or container end.

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
        self.data.len() + self.records as usize * added
    }

    /// Add a record that ends (its last physical line included) at stream offset `end`;
    /// `compact`: held without the stream's metadata until `whole` (one form per batch).
    pub fn push(&mut self, enc: &Encoder, rec: &Record<'_>, end: u64, compact: bool) {
        if self.records == 0 {
            self.opened = Instant::now();
            self.touched = self.opened;
            self.first_ts.push_str(rec.ts);
            self.suffix = compact.then(|| enc.suffix().clone());
        }
        debug_assert_eq!(compact, self.suffix.is_some(), "one form per batch");
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
            let rec = Record {
                ts: "2026-12-07T19:02:12.123456789Z",
                stream: if i % 2 == 0 {
                    StreamKind::Stdout
                } else {
                    StreamKind::Stderr
                },
                message,
                offset: i as u64 * 100,
                truncated: *truncated,
            };
            whole.push(&enc, &rec, i as u64 * 100 + 99, false);
            compact.push(&enc, &rec, i as u64 * 100 + 99, true);
        }
        (whole, compact)
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

    #[test]
    fn a_whole_batch_is_shipped_as_it_is_held() {
        let (whole, _) = both(&[(b"one".to_vec(), false), (b"two\ntwo".to_vec(), true)]);
        let data = whole.data.clone();
        assert_eq!(super::whole(whole.data, None, whole.records), data);
        assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 2);
    }
}
