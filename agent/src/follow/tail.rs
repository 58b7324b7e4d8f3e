//! The tail stage: one `StreamTail` per container stream (pod, container, restart) owns the
//! open file, its position and the partial-line state, and turns new bytes into records of the
//! stream's open batch.
//!
//! Stream offsets count bytes across rotations: each file starts at the stream offset where the
//! previous one ended (`base`). A rotated or deleted file is read to its end through the open
//! descriptor before the stream moves on, so a pod deleted seconds after it finished loses
//! nothing; a truncated file continues at a new base, so offsets never go back.

use super::discover::{file_id, open_checked, StreamFiles};
use super::plan::{Base, Pending, Plan};
use super::{fingerprint, FileMark, StreamCheckpoint};
use crate::batch::Batch;
use crate::clock::now_unix;
use crate::contract::{Fingerprint, Gap, StreamMeta};
use crate::encode::Encoder;
use crate::parse::{Format, Parser};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Bytes read from a file in one call.
const READ_CHUNK: usize = 256 * 1024;
/// Slack above `max_line` for a physical line's CRI header or JSON escaping.
const LINE_SLACK: usize = 64 * 1024;

/// Shared by all streams of one tailer: one read buffer for all of them keeps memory flat
/// however many files are open.
pub struct TailContext {
    pub roots: Vec<PathBuf>,
    pub max_line: usize,
    pub batch_max_bytes: usize,
    /// Hold open batches as compact lines (`batch::whole` completes them): for a live agent,
    /// whose many open batches share one memory budget.
    pub compact: bool,
    pub metrics: Arc<crate::metrics::Metrics>,
    scratch: Vec<u8>,
}

impl TailContext {
    pub fn new(
        roots: Vec<PathBuf>,
        max_line: usize,
        batch_max_bytes: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        TailContext {
            roots,
            max_line,
            batch_max_bytes,
            compact: false,
            metrics,
            scratch: Vec::with_capacity(READ_CHUNK * 2),
        }
    }
}

/// A closed batch with the checkpoint that committing it establishes.
#[derive(Debug)]
pub struct Sealed {
    pub meta: Arc<StreamMeta>,
    pub batch: Batch,
    pub checkpoint: StreamCheckpoint,
    /// The stream has ended (file deleted and read to its end, or its container terminated
    /// and its file read to the end): nothing follows this batch.
    pub complete: bool,
    /// Bytes before this batch that are gone for good (found when the stream was resumed).
    pub gap: Option<crate::contract::Gap>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PumpState {
    /// The read budget ran out with more to read.
    More,
    /// At the end of a file that may still grow.
    Idle,
    /// The stream is over: its last file was deleted and read to the end.
    Ended,
}

enum Reader {
    Plain(File),
    Gz(Box<flate2::read::MultiGzDecoder<File>>),
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(f) => f.read(buf),
            Reader::Gz(g) => g.read(buf),
        }
    }
}

/// An open file of the stream.
struct Source {
    reader: Reader,
    dev: u64,
    ino: u64,
    /// Stream offset of the file's first byte.
    base: u64,
    /// File bytes consumed into complete lines (the carry is not counted).
    pos: u64,
    /// The runtime's `N.log` (as opposed to a rotated file that will not grow).
    live: bool,
    gz: bool,
    /// Its fingerprint once it covers `FINGERPRINT_BYTES` (a shorter one is taken again).
    fingerprint: Option<Fingerprint>,
}

impl Source {
    fn file(&self) -> &File {
        match &self.reader {
            Reader::Plain(f) => f,
            Reader::Gz(g) => g.get_ref(),
        }
    }

    /// Where this file is, for a checkpoint: identity, base and its first bytes (as many as
    /// have been read, up to `FINGERPRINT_BYTES`).
    fn mark(&mut self, seen_unix: i64) -> FileMark {
        let complete = self
            .fingerprint
            .as_ref()
            .is_some_and(|f| f.bytes as usize >= fingerprint::FINGERPRINT_BYTES);
        if !complete {
            match fingerprint::take(self.file(), self.gz, self.pos as usize) {
                Ok(fp) => self.fingerprint = fp,
                Err(e) => tracing::debug!(error = %e, "cannot take a file's fingerprint"),
            }
        }
        FileMark {
            dev: self.dev,
            ino: self.ino,
            base: self.base,
            seen_unix,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

pub struct StreamTail {
    pub meta: Arc<StreamMeta>,
    encoder: Encoder,
    current_path: PathBuf,
    pending: VecDeque<Pending>,
    source: Option<Source>,
    /// Stream offset where the next file starts (the end of the last one read).
    next_base: u64,
    carry: Vec<u8>,
    /// An over-long physical line being skipped: its kept prefix and start offset.
    cut: Option<(Vec<u8>, u64)>,
    parser: Option<Parser>,
    pub batch: Batch,
    /// `(dev, ino)` of `N.log` files already read, so a rescan does not read them again.
    read_current: Option<(u64, u64)>,
    seen_unix: i64,
    format: Option<Format>,
    /// Stream offset before which everything has landed, when only that is known: files are
    /// skipped up to it.
    resume_at: u64,
    /// The last batch was closed full: the next one will likely fill too.
    filling: bool,
    /// The file read last, with where it ended: the checkpoint's file while nothing of the
    /// next one has been read (a checkpoint at a file's first byte cannot name it by content).
    finished: Option<(FileMark, u64)>,
    /// Bytes found gone for good when the stream was resumed: recorded with the next batch.
    lost: Option<Gap>,
}

impl StreamTail {
    /// A stream starting from its checkpoint (or the beginning of its oldest file).
    pub fn new(
        meta: StreamMeta,
        files: &StreamFiles,
        checkpoint: Option<&StreamCheckpoint>,
        roots: &[PathBuf],
    ) -> StreamTail {
        let start = checkpoint.map(|c| c.offset).unwrap_or(0);
        let stream = format!("{}/{}/{}", meta.pod, meta.container, meta.restart);
        let plan = Plan::new(files, checkpoint, roots, &stream);
        StreamTail {
            encoder: Encoder::new(&meta),
            meta: Arc::new(meta),
            current_path: files.current.clone(),
            pending: plan.pending,
            source: None,
            next_base: plan.next_base,
            carry: Vec::new(),
            cut: None,
            parser: None,
            batch: Batch::new(start),
            read_current: None,
            seen_unix: now_unix(),
            format: None,
            resume_at: plan.resume_at,
            filling: false,
            finished: None,
            lost: plan.lost,
        }
    }

    /// What is left to read of the files planned, past the checkpoint (a drain's progress;
    /// gzip files count at their compressed size). Stats each file: not for the hot path.
    pub fn bytes_to_read(&self) -> u64 {
        let sizes = self.pending.iter().map(|p| {
            let len = std::fs::metadata(&p.path).map_or(0, |m| m.len());
            len.saturating_sub(p.skip)
        });
        sizes.sum::<u64>().saturating_sub(self.resume_at)
    }

    pub fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            self.meta.pod, self.meta.container, self.meta.restart
        )
    }

    /// Read what is new, up to `budget` bytes. Closed batches go to `sealed`.
    pub fn pump(
        &mut self,
        ctx: &mut TailContext,
        budget: usize,
        sealed: &mut Vec<Sealed>,
    ) -> PumpState {
        let mut read = 0usize;
        loop {
            if self.source.is_none() && !self.open_next(ctx) {
                return self.idle_or_ended();
            }
            if read >= budget {
                return PumpState::More;
            }
            match self.read_chunk(ctx, sealed) {
                Ok(0) => {
                    if !self.finish_file(ctx, sealed) {
                        return self.idle_or_ended();
                    }
                }
                Ok(n) => read += n,
                Err(e) => {
                    ctx.metrics.read_errors.fetch_add(1, Relaxed);
                    tracing::warn!(stream = %self.describe(), error = %e, "read failed; will retry");
                    return PumpState::Idle;
                }
            }
        }
    }

    /// At the end of the current file: the stream is over once the file has been deleted and
    /// no new `N.log` replaced it.
    fn idle_or_ended(&self) -> PumpState {
        let deleted = match &self.source {
            Some(src) => match &src.reader {
                Reader::Plain(f) => f.metadata().map(|m| m.nlink() == 0).unwrap_or(true),
                Reader::Gz(_) => false,
            },
            None => self.read_current.is_some() || !self.current_path.exists(),
        };
        if deleted
            && file_id(&self.current_path).is_none_or(|id| Some(id) == self.read_current)
            && self.pending.is_empty()
        {
            PumpState::Ended
        } else {
            PumpState::Idle
        }
    }

    /// Hold the stream's first file from the moment it is found: a pod folder deleted before
    /// the first read then loses nothing (the kubelet deletes folders, not open files).
    pub fn open_early(&mut self, ctx: &TailContext) {
        if self.source.is_none() {
            self.open_next(ctx);
        }
    }

    /// Open the next planned file, or a new `N.log` that replaced the one read.
    fn open_next(&mut self, ctx: &TailContext) -> bool {
        if self.pending.is_empty() {
            match file_id(&self.current_path) {
                Some(id) if Some(id) != self.read_current => self.pending.push_back(Pending {
                    path: self.current_path.clone(),
                    gz: false,
                    base: Base::AfterPrevious,
                    skip: 0,
                }),
                _ => return false,
            }
        }
        while let Some(p) = self.pending.pop_front() {
            match self.open(ctx, &p) {
                Ok(src) => {
                    self.source = Some(src);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if out_of_descriptors(&e) => {
                    // Not the file's fault: keep it planned and try again at the next pump.
                    ctx.metrics.read_errors.fetch_add(1, Relaxed);
                    if !OUT_OF_FDS_REPORTED.swap(true, Relaxed) {
                        tracing::error!(file = %p.path.display(), error = %e, "out of file descriptors; the file waits until one is free (raise the agent's open-file limit)");
                    }
                    self.pending.push_front(p);
                    return false;
                }
                Err(e) => {
                    ctx.metrics.read_errors.fetch_add(1, Relaxed);
                    tracing::warn!(file = %p.path.display(), error = %e, "cannot read log file; skipped");
                }
            }
        }
        false
    }

    fn open(&mut self, ctx: &TailContext, p: &Pending) -> io::Result<Source> {
        let file = open_checked(&p.path, &ctx.roots)?;
        let md = file.metadata()?;
        let base = match p.base {
            Base::At(base) => base,
            Base::AfterPrevious => self.next_base,
        };
        let live = p.path == self.current_path;
        if live {
            self.read_current = Some((md.dev(), md.ino()));
            self.seen_unix = now_unix();
        }
        let mut reader = if p.gz {
            Reader::Gz(Box::new(flate2::read::MultiGzDecoder::new(file)))
        } else {
            Reader::Plain(file)
        };
        let mut skip = p.skip.max(self.resume_at.saturating_sub(base));
        if let (Reader::Plain(f), true) = (&mut reader, skip > 0) {
            use std::io::Seek;
            let len = md.len();
            skip = skip.min(len);
            f.seek(io::SeekFrom::Start(skip))?;
        } else if skip > 0 {
            skip = io::copy(&mut (&mut reader).take(skip), &mut io::sink())?;
        }
        self.batch_realign(base + skip);
        Ok(Source {
            reader,
            dev: md.dev(),
            ino: md.ino(),
            base,
            pos: skip,
            live,
            gz: p.gz,
            fingerprint: None,
        })
    }

    /// An empty batch always starts where reading resumes.
    fn batch_realign(&mut self, offset: u64) {
        if self.batch.is_empty() {
            self.batch = Batch::new(offset.max(self.batch.end_offset));
        }
    }

    /// End of a file: a rotated file is done; the live `N.log` is done only when a new `N.log`
    /// replaced it (rotation) — its last bytes were written before the runtime reopened.
    fn finish_file(&mut self, ctx: &mut TailContext, sealed: &mut Vec<Sealed>) -> bool {
        let Some(src) = &self.source else {
            return false;
        };
        if src.live {
            if let Reader::Plain(f) = &src.reader {
                if let Ok(md) = f.metadata() {
                    if md.len() < src.pos {
                        self.truncated(md.len());
                        return true;
                    }
                }
            }
            let replaced = file_id(&self.current_path).is_some_and(|id| id != (src.dev, src.ino));
            if !replaced && self.pending.is_empty() {
                return false;
            }
        }
        // A torn last line (no newline) of a finished file is still a line.
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            let src = self.source.as_mut().expect("checked above");
            let off = src.base + src.pos;
            src.pos += carry.len() as u64;
            self.handle_line(ctx, &carry, off, off + carry.len() as u64, false, sealed);
        }
        let mut src = self.source.take().expect("checked above");
        self.next_base = src.base + src.pos;
        self.finished = Some((src.mark(self.seen_unix), self.next_base));
        true
    }

    /// copytruncate-style truncation: what was read stays shipped; new bytes continue the stream.
    fn truncated(&mut self, new_len: u64) {
        let src = self.source.as_mut().expect("truncation of an open file");
        tracing::warn!(stream = %format!("{}/{}", self.meta.pod, self.meta.container), was = src.pos, now = new_len, "log file truncated; continuing from its new start");
        src.base += src.pos;
        src.pos = 0;
        if let Reader::Plain(f) = &mut src.reader {
            use std::io::Seek;
            let _ = f.seek(io::SeekFrom::Start(0));
        }
        self.carry.clear();
        self.cut = None;
        if let Some(p) = &mut self.parser {
            p.reset();
        }
        let resume = src.base;
        self.batch_realign(resume);
    }

    /// Read one chunk and turn its complete lines into records.
    fn read_chunk(&mut self, ctx: &mut TailContext, sealed: &mut Vec<Sealed>) -> io::Result<usize> {
        // The scratch buffer keeps its length between reads: it is zero-filled only when it
        // grows, not at every read. A live stream is read a line or two at a time, and filling
        // a whole chunk for each of those reads cost more than the read.
        let mut buf = std::mem::take(&mut ctx.scratch);
        let have = self.carry.len();
        let end = have + READ_CHUNK;
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[..have].copy_from_slice(&self.carry);
        self.carry.clear();
        let src = self.source.as_mut().expect("read with an open file");
        let n = match src.reader.read(&mut buf[have..end]) {
            Ok(n) => n,
            Err(e) => {
                self.carry.extend_from_slice(&buf[..have]);
                ctx.scratch = buf;
                return Err(e);
            }
        };
        ctx.metrics.bytes_read.fetch_add(n as u64, Relaxed);
        self.split_lines(ctx, &buf[..have + n], sealed);
        ctx.scratch = buf;
        Ok(n)
    }

    fn split_lines(&mut self, ctx: &mut TailContext, buf: &[u8], sealed: &mut Vec<Sealed>) {
        let max_phys = ctx.max_line + LINE_SLACK;
        let mut start = 0;
        while start < buf.len() {
            let src = self.source.as_ref().expect("open file");
            let off = src.base + src.pos;
            let Some(nl) = memchr::memchr(b'\n', &buf[start..]) else {
                break;
            };
            let line = &buf[start..start + nl];
            let len = nl as u64 + 1;
            self.source.as_mut().expect("open file").pos += len;
            match self.cut.take() {
                // The end of a line that was too long: ship its kept prefix, marked cut.
                Some((prefix, cut_off)) => {
                    self.handle_line(ctx, &prefix, cut_off, off + len, true, sealed)
                }
                None => self.handle_line(ctx, line, off, off + len, false, sealed),
            }
            start += nl + 1;
        }
        let rest = &buf[start..];
        match &mut self.cut {
            Some(_) => self.source.as_mut().expect("open file").pos += rest.len() as u64,
            None if rest.len() > max_phys => {
                let src = self.source.as_mut().expect("open file");
                self.cut = Some((rest[..max_phys].to_vec(), src.base + src.pos));
                src.pos += rest.len() as u64;
            }
            None => self.carry.extend_from_slice(rest),
        }
    }

    fn handle_line(
        &mut self,
        ctx: &mut TailContext,
        line: &[u8],
        off: u64,
        end: u64,
        cut: bool,
        sealed: &mut Vec<Sealed>,
    ) {
        ctx.metrics.lines_read.fetch_add(1, Relaxed);
        let parser = self.parser.get_or_insert_with(|| {
            let f = *self.format.get_or_insert_with(|| Format::detect(line));
            Parser::new(f, ctx.max_line)
        });
        match parser.push(line, off, cut) {
            Ok(Some(rec)) => {
                if self.batch.data.capacity() == 0 {
                    self.batch.data =
                        new_buffer(&mut self.filling, ctx.batch_max_bytes + LINE_SLACK);
                }
                self.batch.push(&self.encoder, &rec, end, ctx.compact)
            }
            Ok(None) => {}
            Err(e) => {
                let n = ctx.metrics.parse_errors.fetch_add(1, Relaxed);
                // Rate-limited: the first few, then every 1000th.
                if n < 10 || n.is_multiple_of(1000) {
                    tracing::warn!(stream = %self.describe(), offset = off, reason = %e, total = n + 1, "malformed log line skipped");
                }
            }
        }
        if self
            .parser
            .as_ref()
            .is_some_and(|p| p.pending_start().is_none())
        {
            self.batch.skip_to(end);
        }
        if self.batch.len() >= ctx.batch_max_bytes {
            sealed.push(self.seal(false));
            self.filling = true;
        }
    }

    /// Close the open batch (if it has records, or moved past skipped bytes) with its checkpoint.
    pub fn seal(&mut self, complete: bool) -> Sealed {
        let resume = match self.parser.as_ref().and_then(|p| p.pending_start()) {
            Some(p) => p.min(self.batch.end_offset),
            None => self.batch.end_offset,
        };
        let seen = self.seen_unix;
        let file = match (&mut self.source, &self.finished) {
            // Nothing of the open file read yet: the one before it ends where reading resumes.
            (Some(s), Some((mark, end))) if resume == s.base && *end == resume => {
                Some(mark.clone())
            }
            (Some(s), _) if resume >= s.base => Some(s.mark(seen)),
            (None, Some((mark, end))) if *end == resume => Some(mark.clone()),
            _ => None,
        };
        let checkpoint = StreamCheckpoint {
            container: self.meta.container.clone(),
            restart: self.meta.restart,
            offset: resume,
            file,
        };
        Sealed {
            meta: self.meta.clone(),
            batch: self.batch.take(),
            checkpoint,
            complete,
            gap: self.lost.take(),
        }
    }

    /// True when the open batch holds records, or skipped bytes whose checkpoint should move.
    pub fn has_unsealed(&self) -> bool {
        !self.batch.is_empty()
            || self.batch.end_offset != self.batch.first_offset
            || self.lost.is_some()
    }

    /// Release the file descriptor of an ended stream.
    pub fn close(&mut self) {
        self.source = None;
        self.carry = Vec::new();
    }

    pub fn is_open(&self) -> bool {
        self.source.is_some()
    }
}

/// A batch's buffer: a spare one while the stream fills batches, else a fresh one. One
/// allocation per batch instead of doubling through every size (and leaving a twice-too-large
/// block behind); a fresh buffer's untouched pages cost no memory.
fn new_buffer(filling: &mut bool, capacity: usize) -> Vec<u8> {
    let spare = std::mem::take(filling)
        .then(|| crate::batch::spare_buffer(capacity))
        .flatten();
    spare.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Reported once per process: a node out of descriptors would otherwise say it at every pump.
static OUT_OF_FDS_REPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
