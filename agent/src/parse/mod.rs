//! Parse stage: turns the physical lines of a container log file (CRI or docker json-file)
//! into logical log lines, joining the runtime's partial chunks and bounding line length.
//!
//! The format-specific modules only decode one physical line into a [`Chunk`]; joining,
//! truncation and offsets are handled here once, identically for both formats.

mod cri;
mod docker;

use std::fmt;

/// On-disk format of a container log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// containerd / CRI-O: `<ts> <stream> <P|F>[:tags] <message>`.
    Cri,
    /// Docker's json-file driver: one JSON object per line.
    DockerJson,
}

impl Format {
    /// Detect from the first physical line of a file: docker json-file lines start with `{`.
    pub fn detect(first_line: &[u8]) -> Format {
        // A CRI line starts with a timestamp digit, so the first byte is enough.
        if first_line.first() == Some(&b'{') {
            Format::DockerJson
        } else {
            Format::Cri
        }
    }
}

/// Which output stream of the container a line was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            StreamKind::Stdout => 0,
            StreamKind::Stderr => 1,
        }
    }
}

/// One logical log line.
#[derive(Debug)]
pub struct Record<'a> {
    /// Timestamp as written by the runtime (RFC 3339); for a joined line, the first chunk's.
    pub ts: &'a str,
    pub stream: StreamKind,
    /// The whole logical line, chunks joined, without the trailing newline. Raw bytes: may be
    /// invalid UTF-8.
    pub message: &'a [u8],
    /// Stream offset of the first physical line of this logical line.
    pub offset: u64,
    /// The message was cut to `max_line` bytes (or the reader cut a physical line).
    pub truncated: bool,
}

/// Why a physical line was rejected. The caller counts and skips such lines.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The timestamp is missing or not `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
    BadTimestamp,
    /// The stream is missing or neither `stdout` nor `stderr`.
    BadStream,
    /// CRI: nothing after the stream where the `P`/`F` tag belongs.
    MissingTag,
    /// CRI: the first tag is neither `P` nor `F`.
    BadTag,
    /// Docker: the line is not a JSON object of the expected shape (serde_json's reason).
    BadJson(String),
    /// Docker: a required field of the entry is absent.
    MissingField(&'static str),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::BadTimestamp => f.write_str("missing or invalid RFC 3339 timestamp"),
            Malformed::BadStream => f.write_str("stream is not stdout or stderr"),
            Malformed::MissingTag => f.write_str("missing P/F tag"),
            Malformed::BadTag => f.write_str("tag is neither P nor F"),
            Malformed::BadJson(reason) => write!(f, "invalid docker json-file entry: {reason}"),
            Malformed::MissingField(name) => write!(f, "docker json-file entry has no `{name}`"),
        }
    }
}

impl std::error::Error for Malformed {}

/// One decoded physical line: a piece of a logical line, `last` when it completes it.
struct Chunk<'a> {
    ts: &'a str,
    stream: StreamKind,
    text: &'a [u8],
    last: bool,
}

/// A logical line being assembled from partial chunks of one stream.
#[derive(Default)]
struct Pending {
    /// `Some` while chunks are buffered; the offset of the first one.
    start: Option<u64>,
    /// Owned copy of the first chunk's timestamp: that chunk's input line is gone by the end.
    ts: String,
    buf: Vec<u8>,
    truncated: bool,
}

impl Pending {
    fn accept<'a>(
        &'a mut self,
        chunk: Chunk<'a>,
        offset: u64,
        cut: bool,
        max_line: usize,
    ) -> Option<Record<'a>> {
        let start = match self.start {
            Some(start) => start,
            None if chunk.last => {
                // The common case: a whole line in one chunk is returned without copying.
                let keep = chunk.text.len().min(max_line);
                return Some(Record {
                    ts: chunk.ts,
                    stream: chunk.stream,
                    message: &chunk.text[..keep],
                    offset,
                    truncated: cut || keep < chunk.text.len(),
                });
            }
            None => {
                self.ts.clear();
                self.ts.push_str(chunk.ts);
                self.buf.clear();
                self.truncated = false;
                offset
            }
        };
        self.append(chunk.text, max_line);
        self.truncated |= cut;
        if !chunk.last {
            self.start = Some(start);
            return None;
        }
        self.start = None;
        Some(Record {
            ts: &self.ts,
            stream: chunk.stream,
            message: &self.buf,
            offset: start,
            truncated: self.truncated,
        })
    }

    fn append(&mut self, text: &[u8], max_line: usize) {
        let room = max_line.saturating_sub(self.buf.len());
        let take = text.len().min(room);
        if take < text.len() {
            self.truncated = true;
        }
        let need = self.buf.len() + take;
        if need > self.buf.capacity() {
            // Geometric growth keeps appends amortised O(1), capped so that a runaway line
            // never holds more than max_line bytes of memory.
            let target = need.max(self.buf.capacity() * 2).min(max_line);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(&text[..take]);
    }

    fn clear(&mut self) {
        self.start = None;
        self.buf.clear();
        self.truncated = false;
    }
}

/// Turns physical lines into logical lines. Its buffers are reused across lines and bounded
/// by `max_line` (plus the longest physical line, for docker), so once they have grown the
/// CRI path does not allocate at all.
pub struct Parser {
    format: Format,
    max_line: usize,
    /// Indexed by [`StreamKind::index`]: stdout and stderr chunks interleave in one file,
    /// each stream with its own partial line.
    pending: [Pending; 2],
    /// Docker: the unescaped `log` of the current entry, which cannot borrow from the line.
    scratch: Vec<u8>,
    /// Docker: the current entry's `time`, only used if it was written with JSON escapes.
    ts_scratch: Vec<u8>,
}

impl Parser {
    pub fn new(format: Format, max_line: usize) -> Parser {
        Parser {
            format,
            max_line,
            pending: Default::default(),
            scratch: Vec::new(),
            ts_scratch: Vec::new(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Feed one physical line: `line` excludes the trailing '\n' (a trailing '\r' is part of
    /// the content). `offset` is the stream offset where this physical line starts. `cut` is
    /// true when the reader had to cut an over-long physical line: the record is then
    /// `truncated`.
    ///
    /// Returns `Ok(Some(record))` when a logical line completes, `Ok(None)` when a partial
    /// chunk was buffered, `Err` for a line that does not parse; an error leaves pending
    /// partial lines untouched, so the chunks around a bad line still join.
    pub fn push<'a>(
        &'a mut self,
        line: &'a [u8],
        offset: u64,
        cut: bool,
    ) -> Result<Option<Record<'a>>, Malformed> {
        let chunk = match self.format {
            Format::Cri => cri::parse(line)?,
            Format::DockerJson => docker::parse(line, &mut self.scratch, &mut self.ts_scratch)?,
        };
        Ok(self.pending[chunk.stream.index()].accept(chunk, offset, cut, self.max_line))
    }

    /// Stream offset where the pending (incomplete) logical line starts, if partial chunks
    /// are buffered. The caller never checkpoints past it.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.iter().filter_map(|p| p.start).min()
    }

    /// Drop any pending partial line (used after a file truncation).
    pub fn reset(&mut self) {
        self.pending.iter_mut().for_each(Pending::clear);
    }
}

/// Checks the shape `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` and the field ranges. The
/// runtime's text is archived as is, so this only has to tell timestamps from garbage.
fn timestamp(b: &[u8]) -> Option<&str> {
    fn num(b: &[u8], at: usize, range: std::ops::RangeInclusive<u8>) -> Option<()> {
        let (hi, lo) = (*b.get(at)?, *b.get(at + 1)?);
        let ok = hi.is_ascii_digit()
            && lo.is_ascii_digit()
            && range.contains(&((hi - b'0') * 10 + (lo - b'0')));
        ok.then_some(())
    }
    let year_ok = b.len() >= 20 && b[..4].iter().all(u8::is_ascii_digit);
    let seps_ok = year_ok
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !seps_ok {
        return None;
    }
    num(b, 5, 1..=12)?;
    num(b, 8, 1..=31)?;
    num(b, 11, 0..=23)?;
    num(b, 14, 0..=59)?;
    num(b, 17, 0..=60)?; // 60: leap second
    let mut i = 19;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += 1 + digits;
    }
    match b.get(i)? {
        b'Z' | b'z' => i += 1,
        b'+' | b'-' => {
            num(b, i + 1, 0..=23)?;
            (b.get(i + 3)? == &b':').then_some(())?;
            num(b, i + 4, 0..=59)?;
            i += 6;
        }
        _ => return None,
    }
    if i != b.len() {
        return None;
    }
    // Every byte was checked to be ASCII above, so this never fails.
    std::str::from_utf8(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of a [`Record`], so results of several pushes can be kept and compared.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Rec {
        pub ts: String,
        pub stream: StreamKind,
        pub message: Vec<u8>,
        pub offset: u64,
        pub truncated: bool,
    }

    pub(super) type Outcome = Result<Option<Rec>, Malformed>;

    pub(super) fn push(p: &mut Parser, line: &[u8], offset: u64, cut: bool) -> Outcome {
        p.push(line, offset, cut).map(|r| {
            r.map(|r| Rec {
                ts: r.ts.to_owned(),
                stream: r.stream,
                message: r.message.to_vec(),
                offset: r.offset,
                truncated: r.truncated,
            })
        })
    }

    /// Feeds lines as a file would hold them (each followed by '\n'), with their offsets.
    pub(super) fn feed<L: AsRef<[u8]>>(p: &mut Parser, lines: &[L]) -> Vec<Outcome> {
        let mut offset = 0;
        lines
            .iter()
            .map(|line| {
                let line = line.as_ref();
                let out = push(p, line, offset, false);
                offset += line.len() as u64 + 1;
                out
            })
            .collect()
    }

    /// The completed records of `outcomes`, skipping buffered chunks and errors.
    pub(super) fn records(outcomes: Vec<Outcome>) -> Vec<Rec> {
        outcomes
            .into_iter()
            .filter_map(|o| o.ok().flatten())
            .collect()
    }

    pub(super) fn cri_line(stream: &str, tag: &str, msg: &[u8]) -> Vec<u8> {
        let mut line = format!("2024-05-06T07:08:09.123456789Z {stream} {tag} ").into_bytes();
        line.extend_from_slice(msg);
        line
    }

    pub(super) fn docker_line(log: &str, stream: &str) -> Vec<u8> {
        let entry = serde_json::json!({
            "log": log,
            "stream": stream,
            "time": "2019-01-01T00:00:00.123456789Z",
        });
        serde_json::to_vec(&entry).unwrap()
    }

    #[test]
    fn detects_format_from_first_byte() {
        assert_eq!(Format::detect(br#"{"log":"x\n"}"#), Format::DockerJson);
        assert_eq!(
            Format::detect(b"2024-01-01T00:00:00Z stdout F x"),
            Format::Cri
        );
        assert_eq!(Format::detect(b""), Format::Cri);
        assert_eq!(
            Parser::new(Format::DockerJson, 10).format(),
            Format::DockerJson
        );
    }

    #[test]
    fn stream_names() {
        assert_eq!(StreamKind::Stdout.as_str(), "stdout");
        assert_eq!(StreamKind::Stderr.as_str(), "stderr");
    }

    #[test]
    fn accepts_rfc3339_timestamps() {
        for ts in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.000000001Z",
            "2024-12-31T23:59:60.5Z",
            "2024-02-29t12:30:00.123z",
            "2024-06-01T10:00:00.123456789+02:00",
            "2024-06-01T10:00:00-23:59",
        ] {
            assert_eq!(timestamp(ts.as_bytes()), Some(ts), "{ts}");
        }
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for ts in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1",
            "2024-01-01T00:00:00+0200",
            "2024-01-01T00:00:00+02:0",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00ZZ",
            "2024-01-01T00:00:00Z ",
            "20a4-01-01T00:00:00Z",
            "2024-01-01T00:00:00.12é",
        ] {
            assert_eq!(timestamp(ts.as_bytes()), None, "{ts:?}");
        }
    }

    #[test]
    fn malformed_reasons_are_readable() {
        assert_eq!(
            Malformed::BadStream.to_string(),
            "stream is not stdout or stderr"
        );
        assert_eq!(
            Malformed::MissingField("log").to_string(),
            "docker json-file entry has no `log`"
        );
        assert!(Malformed::BadJson("eof".into())
            .to_string()
            .ends_with(": eof"));
    }

    #[test]
    fn reset_drops_pending_lines() {
        let mut p = Parser::new(Format::Cri, 1024);
        let out = feed(
            &mut p,
            &[
                cri_line("stdout", "P", b"lost "),
                cri_line("stderr", "P", b"lost too"),
            ],
        );
        assert!(out.iter().all(|o| matches!(o, Ok(None))));
        assert_eq!(p.pending_start(), Some(0));
        p.reset();
        assert_eq!(p.pending_start(), None);
        let rec = push(&mut p, &cri_line("stdout", "F", b"fresh"), 500, false);
        let rec = rec.unwrap().unwrap();
        assert_eq!((rec.message.as_slice(), rec.offset), (&b"fresh"[..], 500));
        assert!(!rec.truncated);
    }

    /// A random byte string that is sometimes shaped like a log line, to reach past the
    /// first checks of both parsers.
    fn line_like() -> impl Strategy<Value = Vec<u8>> {
        let prefix = prop_oneof![
            Just(Vec::new()),
            Just(b"2024-05-06T07:08:09.1Z stdout ".to_vec()),
            Just(b"2024-05-06T07:08:09+01:00 stderr P".to_vec()),
            Just(br#"{"log":"#.to_vec()),
            Just(br#"{"stream":"stdout","time":"2019-01-01T00:00:00Z","log":"a"#.to_vec()),
        ];
        (prefix, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(mut p, rest)| {
            p.extend(rest.into_iter().filter(|&b| b != b'\n'));
            p
        })
    }

    /// Splits `msg` into `cuts.len() + 1` chunks at arbitrary points (CRI: any byte).
    fn split_at_points<'m>(msg: &'m [u8], cuts: &[usize]) -> Vec<&'m [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (msg.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in points.into_iter().chain([msg.len()]) {
            chunks.push(&msg[from..to]);
            from = to;
        }
        chunks
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(
            lines in proptest::collection::vec((line_like(), any::<bool>()), 0..24),
            docker in any::<bool>(),
            max_line in 0usize..48,
        ) {
            let format = if docker { Format::DockerJson } else { Format::Cri };
            let mut p = Parser::new(format, max_line);
            for (i, (line, cut)) in lines.iter().enumerate() {
                if let Ok(Some(rec)) = p.push(line, i as u64, *cut) {
                    prop_assert!(rec.message.len() <= max_line);
                    prop_assert!(rec.offset <= i as u64);
                }
                prop_assert!(p.pending.iter().all(|q| q.buf.capacity() <= max_line));
            }
        }

        #[test]
        fn valid_line_after_garbage_parses_exactly(
            garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..16),
            docker in any::<bool>(),
            msg in "[^\n]{0,40}",
        ) {
            let (format, valid) = if docker {
                (Format::DockerJson, docker_line(&format!("{msg}\n"), "stderr"))
            } else {
                (Format::Cri, cri_line("stderr", "F", msg.as_bytes()))
            };
            let mut p = Parser::new(format, 1 << 20);
            for line in &garbage {
                let _ = p.push(line, 0, false);
            }
            // Random bytes forming a valid partial chunk would be a legitimate join.
            prop_assume!(p.pending_start().is_none());
            let rec = p.push(&valid, 7, false).unwrap().unwrap();
            prop_assert_eq!(rec.message, msg.as_bytes());
            prop_assert_eq!((rec.stream, rec.offset, rec.truncated), (StreamKind::Stderr, 7, false));
        }

        #[test]
        fn garbage_between_chunks_does_not_disturb_join(
            garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..8),
            head in proptest::collection::vec(any::<u8>(), 0..40),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let head: Vec<u8> = head.into_iter().filter(|&b| b != b'\n').collect();
            let tail: Vec<u8> = tail.into_iter().filter(|&b| b != b'\n').collect();
            let mut p = Parser::new(Format::Cri, 1 << 20);
            prop_assert!(p.push(&cri_line("stdout", "P", &head), 3, false).unwrap().is_none());
            for line in &garbage {
                prop_assume!(p.push(line, 9, false).is_err());
            }
            let rec = push(&mut p, &cri_line("stdout", "F", &tail), 99, false).unwrap().unwrap();
            prop_assert_eq!(rec.message, [head, tail].concat());
            prop_assert_eq!((rec.offset, rec.truncated), (3, false));
        }

        #[test]
        fn cri_chunks_join_and_truncate(
            msg in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max_line in 0usize..256,
        ) {
            let msg: Vec<u8> = msg.into_iter().filter(|&b| b != b'\n').collect();
            let chunks = split_at_points(&msg, &cuts);
            let mut p = Parser::new(Format::Cri, max_line);
            let lines: Vec<Vec<u8>> = chunks.iter().enumerate().map(|(i, c)| {
                cri_line("stdout", if i + 1 == chunks.len() { "F" } else { "P" }, c)
            }).collect();
            let mut out = feed(&mut p, &lines);
            let rec = out.pop().unwrap().unwrap().unwrap();
            prop_assert!(out.iter().all(|o| matches!(o, Ok(None))));
            let keep = msg.len().min(max_line);
            prop_assert_eq!(&rec.message, &msg[..keep]);
            prop_assert_eq!(rec.truncated, msg.len() > max_line);
            prop_assert_eq!(rec.offset, 0);
            prop_assert_eq!(p.pending_start(), None);
        }

        #[test]
        fn docker_entries_join_and_truncate(
            msg in "\\PC{0,120}",
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max_line in 0usize..512,
        ) {
            // Docker splits on bytes, but its encoder would then replace a cut character, so
            // cut on character boundaries to know the expected text.
            let mut points: Vec<usize> = cuts.iter()
                .map(|c| c % (msg.len() + 1))
                .map(|mut c| { while !msg.is_char_boundary(c) { c -= 1; } c })
                .collect();
            points.sort_unstable();
            points.push(msg.len());
            let mut from = 0;
            let mut lines = Vec::new();
            for (i, &to) in points.iter().enumerate() {
                let nl = if i + 1 == points.len() { "\n" } else { "" };
                lines.push(docker_line(&format!("{}{nl}", &msg[from..to]), "stdout"));
                from = to;
            }
            let mut p = Parser::new(Format::DockerJson, max_line);
            let mut out = feed(&mut p, &lines);
            let rec = out.pop().unwrap().unwrap().unwrap();
            prop_assert!(out.iter().all(|o| matches!(o, Ok(None))));
            let keep = msg.len().min(max_line);
            prop_assert_eq!(&rec.message, &msg.as_bytes()[..keep]);
            prop_assert_eq!(rec.truncated, msg.len() > max_line);
            prop_assert_eq!(&rec.ts, "2019-01-01T00:00:00.123456789Z");
        }
    }
}
