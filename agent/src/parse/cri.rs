//! CRI log lines (containerd, CRI-O): `<RFC 3339 ts> <stdout|stderr> <P|F>[:tag...] <message>`,
//! decoded into a [`Chunk`] that borrows from the line.

use memchr::memchr;

use super::{timestamp, Chunk, Malformed, StreamKind};

pub(super) fn parse(line: &[u8]) -> Result<Chunk<'_>, Malformed> {
    let (ts, rest) = split_field(line);
    let ts = timestamp(ts).ok_or(Malformed::BadTimestamp)?;
    let (stream, rest) = split_field(rest.ok_or(Malformed::BadStream)?);
    let stream = match stream {
        b"stdout" => StreamKind::Stdout,
        b"stderr" => StreamKind::Stderr,
        _ => return Err(Malformed::BadStream),
    };
    let (tags, message) = split_field(rest.ok_or(Malformed::MissingTag)?);
    // Later tags are reserved for runtime extensions; only the first says partial or full.
    let first_tag = memchr(b':', tags).map_or(tags, |colon| &tags[..colon]);
    let last = match first_tag {
        b"F" => true,
        b"P" => false,
        b"" => return Err(Malformed::MissingTag),
        _ => return Err(Malformed::BadTag),
    };
    Ok(Chunk {
        ts,
        stream,
        // The runtime writes nothing after the tag for an empty line, or a lone space.
        text: message.unwrap_or_default(),
        last,
    })
}

/// Splits at the first space: the field before it, and everything after that one space (so
/// the message keeps any further spaces), or `None` when the line has no space.
fn split_field(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr(b' ', s) {
        Some(sp) => (&s[..sp], Some(&s[sp + 1..])),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::tests::{cri_line, feed, push, records, Rec};
    use crate::parse::{Format, Malformed, Parser, StreamKind};

    const TS: &str = "2024-05-06T07:08:09.123456789Z";

    fn parser() -> Parser {
        Parser::new(Format::Cri, 1 << 20)
    }

    fn rec(stream: StreamKind, message: &[u8], offset: u64) -> Rec {
        Rec {
            ts: TS.to_owned(),
            stream,
            message: message.to_vec(),
            offset,
            truncated: false,
        }
    }

    #[test]
    fn full_line_borrows_from_input() {
        let line = b"2024-01-02T03:04:05.000000001Z stdout F hello  world";
        let mut p = parser();
        let r = p.push(line, 42, false).unwrap().unwrap();
        assert_eq!(r.ts, "2024-01-02T03:04:05.000000001Z");
        assert_eq!(r.stream, StreamKind::Stdout);
        assert_eq!(r.message, b"hello  world");
        assert_eq!((r.offset, r.truncated), (42, false));
        assert!(line.as_ptr_range().contains(&r.message.as_ptr()));
        assert!(p.pending_start().is_none());
    }

    #[test]
    fn empty_message_with_or_without_space() {
        let mut p = parser();
        for line in [
            &b"2024-01-01T00:00:00Z stderr F "[..],
            b"2024-01-01T00:00:00Z stderr F",
        ] {
            let r = p.push(line, 0, false).unwrap().unwrap();
            assert_eq!((r.stream, r.message), (StreamKind::Stderr, &b""[..]));
        }
        // An empty final chunk still completes a pending line.
        let out = feed(
            &mut p,
            &[
                cri_line("stdout", "P", b"abc"),
                cri_line("stdout", "F", b""),
            ],
        );
        assert_eq!(records(out), [rec(StreamKind::Stdout, b"abc", 0)]);
    }

    #[test]
    fn only_the_first_tag_counts() {
        let lines = [
            cri_line("stdout", "P:x:y", b"one "),
            cri_line("stdout", "F:z", b"two"),
            cri_line("stdout", "F:P", b"three"),
        ];
        let out = feed(&mut parser(), &lines);
        let second = lines[0].len() as u64 + 1 + lines[1].len() as u64 + 1;
        assert_eq!(
            records(out),
            [
                rec(StreamKind::Stdout, b"one two", 0),
                rec(StreamKind::Stdout, b"three", second),
            ]
        );
    }

    #[test]
    fn joins_long_line_split_in_16k_chunks() {
        let msg: Vec<u8> = (0..70 * 1024).map(|i| b' ' + (i % 94) as u8).collect();
        let chunks: Vec<&[u8]> = msg.chunks(16 * 1024).collect();
        assert_eq!(chunks.len(), 5);
        let mut p = parser();
        // A preceding line puts the long one at a non-zero offset.
        let first = push(&mut p, &cri_line("stdout", "F", b"before"), 0, false);
        assert_eq!(first.unwrap().unwrap().message, b"before");
        let mut offset = 1000;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            // Every chunk has its own timestamp; the record must carry the first one.
            let mut line = format!(
                "2024-05-06T07:08:{i:02}.5Z stdout {} ",
                if last { "F" } else { "P" }
            )
            .into_bytes();
            line.extend_from_slice(chunk);
            let out = push(&mut p, &line, offset, false).unwrap();
            if last {
                let r = out.unwrap();
                assert_eq!(r.message, msg);
                assert_eq!((r.ts.as_str(), r.offset), ("2024-05-06T07:08:00.5Z", 1000));
                assert_eq!((r.stream, r.truncated), (StreamKind::Stdout, false));
            } else {
                assert_eq!(out, None);
                assert_eq!(p.pending_start(), Some(1000));
            }
            offset += line.len() as u64 + 1;
        }
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn stdout_and_stderr_partials_interleave() {
        let lines = [
            cri_line("stdout", "P", b"out1 "),
            cri_line("stderr", "P", b"err1 "),
            cri_line("stdout", "F", b"out2"),
            cri_line("stderr", "P", b"err2 "),
            cri_line("stderr", "F", b"err3"),
        ];
        let starts: Vec<u64> = lines
            .iter()
            .scan(0, |at, l| {
                let start = *at;
                *at += l.len() as u64 + 1;
                Some(start)
            })
            .collect();
        let mut p = parser();
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for (line, &start) in lines.iter().zip(&starts) {
            out.push(push(&mut p, line, start, false));
            pending.push(p.pending_start());
        }
        assert_eq!(
            records(out),
            [
                rec(StreamKind::Stdout, b"out1 out2", starts[0]),
                rec(StreamKind::Stderr, b"err1 err2 err3", starts[1]),
            ]
        );
        assert_eq!(
            pending,
            [
                Some(starts[0]),
                Some(starts[0]),
                Some(starts[1]),
                Some(starts[1]),
                None
            ]
        );
    }

    #[test]
    fn keeps_carriage_returns_tabs_and_spaces() {
        let out = feed(
            &mut parser(),
            &[
                cri_line("stdout", "F", b"a\tb  c \r"),
                cri_line("stdout", "P", b"\tx\r"),
                cri_line("stdout", "F", b" y\r"),
            ],
        );
        let msgs: Vec<Vec<u8>> = records(out).into_iter().map(|r| r.message).collect();
        assert_eq!(msgs, [b"a\tb  c \r".to_vec(), b"\tx\r y\r".to_vec()]);
    }

    #[test]
    fn keeps_invalid_utf8_bytes() {
        let bad = [0xff, 0xfe, b' ', 0xc3, 0x28, 0x80];
        let out = feed(
            &mut parser(),
            &[
                cri_line("stdout", "F", &bad),
                cri_line("stdout", "P", &bad[..4]),
                cri_line("stdout", "F", &bad[4..]),
            ],
        );
        let msgs: Vec<Vec<u8>> = records(out).into_iter().map(|r| r.message).collect();
        assert_eq!(msgs, [bad.to_vec(), bad.to_vec()]);
    }

    #[test]
    fn malformed_lines_do_not_disturb_a_pending_join() {
        let lines: [&[u8]; 10] = [
            b"2024-05-06T07:08:09.123456789Z stdout P first ",
            b"complete garbage",
            b"",
            b"2024-13-06T07:08:09Z stdout F bad month",
            b"2024-05-06T07:08:09.123456789Z stdin F bad stream",
            b"2024-05-06T07:08:09.123456789Z",
            b"2024-05-06T07:08:09.123456789Z stdout",
            b"2024-05-06T07:08:09.123456789Z stdout  two spaces",
            b"2024-05-06T07:08:09.123456789Z stdout X bad tag",
            b"2024-05-06T07:08:09.123456789Z stdout F second",
        ];
        let mut p = parser();
        let mut out = feed(&mut p, &lines);
        let last = out.pop().unwrap();
        assert_eq!(
            out,
            [
                Ok(None),
                Err(Malformed::BadTimestamp),
                Err(Malformed::BadTimestamp),
                Err(Malformed::BadTimestamp),
                Err(Malformed::BadStream),
                Err(Malformed::BadStream),
                Err(Malformed::MissingTag),
                Err(Malformed::MissingTag),
                Err(Malformed::BadTag),
            ]
        );
        assert_eq!(last, Ok(Some(rec(StreamKind::Stdout, b"first second", 0))));
        assert_eq!(p.pending_start(), None);
        let next = push(&mut p, &cri_line("stdout", "F", b"next"), 5, false);
        assert_eq!(next, Ok(Some(rec(StreamKind::Stdout, b"next", 5))));
    }

    #[test]
    fn truncates_joined_lines_with_bounded_memory() {
        let max_line = 1000;
        let mut p = Parser::new(Format::Cri, max_line);
        let chunk = vec![b'x'; 16 * 1024];
        assert_eq!(
            push(&mut p, &cri_line("stdout", "P", &chunk), 10, false),
            Ok(None)
        );
        for _ in 0..3 {
            assert_eq!(
                push(&mut p, &cri_line("stdout", "P", &chunk), 20, false),
                Ok(None)
            );
            assert!(p.pending[0].buf.capacity() <= max_line);
        }
        let r = push(&mut p, &cri_line("stdout", "F", b"tail"), 30, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.message.len(), r.offset, r.truncated),
            (max_line, 10, true)
        );
        assert!(p.pending[0].buf.capacity() <= max_line);

        // The next line starts clean.
        let out = feed(
            &mut p,
            &[
                cri_line("stdout", "P", b"ab"),
                cri_line("stdout", "F", b"c"),
            ],
        );
        assert_eq!(records(out)[0].message, b"abc");
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn truncation_keeps_exactly_max_line_bytes() {
        let mut p = Parser::new(Format::Cri, 10);
        let out = feed(
            &mut p,
            &[
                cri_line("stdout", "P", b"abcdefgh"),
                cri_line("stdout", "P", b"ijklmnop"),
                cri_line("stdout", "F", b"qrstuvwxyz"),
                cri_line("stdout", "F", b"0123456789"),
                cri_line("stdout", "F", b"0123456789A"),
            ],
        );
        let got: Vec<(Vec<u8>, bool)> = records(out)
            .into_iter()
            .map(|r| (r.message, r.truncated))
            .collect();
        assert_eq!(
            got,
            [
                (b"abcdefghij".to_vec(), true),
                (b"0123456789".to_vec(), false),
                (b"0123456789".to_vec(), true),
            ]
        );
    }

    #[test]
    fn reader_cut_marks_truncated() {
        let mut p = parser();
        let full = push(&mut p, &cri_line("stdout", "F", b"cut short"), 0, true);
        assert!(full.unwrap().unwrap().truncated);
        assert_eq!(
            push(&mut p, &cri_line("stdout", "P", b"a"), 1, true),
            Ok(None)
        );
        let joined = push(&mut p, &cri_line("stdout", "F", b"b"), 2, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (joined.message.as_slice(), joined.truncated),
            (&b"ab"[..], true)
        );
        let clean = push(&mut p, &cri_line("stdout", "F", b"c"), 3, false)
            .unwrap()
            .unwrap();
        assert!(!clean.truncated);
    }
}
