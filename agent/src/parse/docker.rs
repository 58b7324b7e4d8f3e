//! Docker json-file log lines: `{"log":"...\n","stream":"stdout","time":"..."}` decoded into
//! a [`Chunk`]. A `log` without its final newline is a piece of a longer line (docker splits
//! at 16 KiB) continued by the next entry of the same stream.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use super::{timestamp, Chunk, Malformed, StreamKind};

/// `scratch` and `ts_scratch` are reused across calls: they receive a string field only when
/// JSON escapes stop it from being borrowed from `line` (nearly always for `log`, since its
/// newline is escaped). serde_json itself still unescapes through a buffer of its own, one
/// small allocation per such entry: avoiding it would need its `raw_value` feature or a
/// hand-written JSON reader, and docker json-file is the rare format on current clusters.
pub(super) fn parse<'a>(
    line: &'a [u8],
    scratch: &'a mut Vec<u8>,
    ts_scratch: &'a mut Vec<u8>,
) -> Result<Chunk<'a>, Malformed> {
    scratch.clear();
    ts_scratch.clear();
    let mut de = serde_json::Deserializer::from_slice(line);
    let entry = EntrySeed {
        log_sink: &mut *scratch,
        ts_sink: &mut *ts_scratch,
    }
    .deserialize(&mut de)
    .and_then(|entry| de.end().map(|()| entry))
    .map_err(|e| Malformed::BadJson(e.to_string()))?;

    let log = entry.log.ok_or(Malformed::MissingField("log"))?;
    let stream = entry.stream.ok_or(Malformed::MissingField("stream"))?;
    let time = entry.time.ok_or(Malformed::MissingField("time"))?;
    let stream = stream.ok_or(Malformed::BadStream)?;
    let ts = timestamp(time.resolve(ts_scratch)).ok_or(Malformed::BadTimestamp)?;
    let log = log.resolve(scratch);
    // Docker appends exactly one newline to a complete line; any before it is content.
    let (text, last) = match log.strip_suffix(b"\n") {
        Some(text) => (text, true),
        None => (log, false),
    };
    Ok(Chunk {
        ts,
        stream,
        text,
        last,
    })
}

/// A string field: borrowed from the input when it had no escapes, else copied to a sink.
enum Text<'de> {
    Borrowed(&'de [u8]),
    Copied,
}

impl<'de> Text<'de> {
    fn resolve<'a>(self, sink: &'a [u8]) -> &'a [u8]
    where
        'de: 'a,
    {
        match self {
            Text::Borrowed(text) => text,
            Text::Copied => sink,
        }
    }
}

#[derive(Default)]
struct Entry<'de> {
    log: Option<Text<'de>>,
    /// Outer `None`: absent; inner `None`: present but not a stream we know.
    stream: Option<Option<StreamKind>>,
    time: Option<Text<'de>>,
}

/// Deserializes an entry, writing escaped strings to caller-owned buffers instead of
/// allocating; other fields (`attrs`, ...) are skipped without being stored.
struct EntrySeed<'s> {
    log_sink: &'s mut Vec<u8>,
    ts_sink: &'s mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Entry<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a docker json-file entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<'de>, A::Error> {
        let mut entry = Entry::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Log if entry.log.is_some() => return Err(de::Error::duplicate_field("log")),
                Key::Log => entry.log = Some(map.next_value_seed(TextSeed(&mut *self.log_sink))?),
                Key::Stream if entry.stream.is_some() => {
                    return Err(de::Error::duplicate_field("stream"))
                }
                Key::Stream => entry.stream = Some(map.next_value_seed(StreamSeed)?),
                Key::Time if entry.time.is_some() => {
                    return Err(de::Error::duplicate_field("time"))
                }
                Key::Time => entry.time = Some(map.next_value_seed(TextSeed(&mut *self.ts_sink))?),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entry)
    }
}

enum Key {
    Log,
    Stream,
    Time,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "log" => Key::Log,
                    "stream" => Key::Stream,
                    "time" => Key::Time,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Reads a string field, borrowing it when serde_json can, else appending it to the sink.
struct TextSeed<'s>(&'s mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = Text<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
        Ok(Text::Borrowed(s.as_bytes()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
        self.0.extend_from_slice(s.as_bytes());
        Ok(Text::Copied)
    }
}

/// Reads the `stream` field without allocating, even if it was written with escapes.
struct StreamSeed;

impl<'de> DeserializeSeed<'de> for StreamSeed {
    type Value = Option<StreamKind>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for StreamSeed {
    type Value = Option<StreamKind>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(match s {
            "stdout" => Some(StreamKind::Stdout),
            "stderr" => Some(StreamKind::Stderr),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::tests::{docker_line, feed, push, records, Rec};
    use crate::parse::{Format, Malformed, Parser, StreamKind};

    const TIME: &str = "2019-01-01T00:00:00.123456789Z";

    fn parser() -> Parser {
        Parser::new(Format::DockerJson, 1 << 20)
    }

    fn rec(stream: StreamKind, message: &[u8], offset: u64) -> Rec {
        Rec {
            ts: TIME.to_owned(),
            stream,
            message: message.to_vec(),
            offset,
            truncated: false,
        }
    }

    #[test]
    fn simple_entry() {
        let line =
            br#"{"log":"hello world\n","stream":"stdout","time":"2019-01-01T00:00:00.123456789Z"}"#;
        let mut p = parser();
        let r = p.push(line, 17, false).unwrap().unwrap();
        assert_eq!(r.ts, TIME);
        assert!(line.as_ptr_range().contains(&r.ts.as_ptr()));
        assert_eq!(
            (r.stream, r.message),
            (StreamKind::Stdout, &b"hello world"[..])
        );
        assert_eq!((r.offset, r.truncated), (17, false));
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn joins_entries_split_at_16k() {
        let msg: String = (0..40 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let pieces: Vec<&str> = msg
            .as_bytes()
            .chunks(16 * 1024)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        assert_eq!(pieces.len(), 3);
        let mut lines: Vec<Vec<u8>> = vec![docker_line("short\n", "stderr")];
        for (i, piece) in pieces.iter().enumerate() {
            let nl = if i + 1 == pieces.len() { "\n" } else { "" };
            lines.push(docker_line(&format!("{piece}{nl}"), "stderr"));
        }
        let mut p = parser();
        let out = feed(&mut p, &lines);
        assert_eq!(out[1..3], [Ok(None), Ok(None)]);
        assert_eq!(
            records(out),
            [
                rec(StreamKind::Stderr, b"short", 0),
                rec(
                    StreamKind::Stderr,
                    msg.as_bytes(),
                    lines[0].len() as u64 + 1
                ),
            ]
        );
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn first_entry_timestamp_and_offset_of_joined_line() {
        let lines = [
            br#"{"log":"a","stream":"stdout","time":"2019-01-01T00:00:01Z"}"#.to_vec(),
            br#"{"log":"b\n","stream":"stdout","time":"2019-01-01T00:00:02Z"}"#.to_vec(),
        ];
        let mut p = parser();
        assert_eq!(push(&mut p, &lines[0], 100, false), Ok(None));
        assert_eq!(p.pending_start(), Some(100));
        let r = push(&mut p, &lines[1], 200, false).unwrap().unwrap();
        assert_eq!(
            (r.ts.as_str(), r.offset, r.message.as_slice()),
            ("2019-01-01T00:00:01Z", 100, &b"ab"[..])
        );
    }

    #[test]
    fn unescapes_log_and_strips_one_newline() {
        let lines = [
            br#"{"log":"a\nb\u00e9\t\"q\" \\ \/\r\n","stream":"stdout","time":"2019-01-01T00:00:00.123456789Z"}"#.to_vec(),
            br#"{"log":"two\n\n","stream":"stdout","time":"2019-01-01T00:00:00.123456789Z"}"#.to_vec(),
            br#"{"log":"\ud83d\ude00\n","stream":"stdout","time":"2019-01-01T00:00:00.123456789Z"}"#.to_vec(),
            br#"{"log":"\n","stream":"stdout","time":"2019-01-01T00:00:00.123456789Z"}"#.to_vec(),
        ];
        let msgs: Vec<Vec<u8>> = records(feed(&mut parser(), &lines))
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(
            msgs,
            [
                "a\nbé\t\"q\" \\ /\r".as_bytes().to_vec(),
                b"two\n".to_vec(),
                "😀".as_bytes().to_vec(),
                Vec::new(),
            ]
        );
    }

    #[test]
    fn ignores_extra_fields_and_field_order() {
        let lines = [
            br#"{"time":"2019-01-01T00:00:00.123456789Z","attrs":{"tag":"x","n":[1,{"a":null}]},"stream":"stderr","log":"hi\n"}"#.to_vec(),
            br#" { "log" : "there\n" , "stream" : "stdout" , "time" : "2019-01-01T00:00:00.123456789Z" , "extra" : true } "#.to_vec(),
        ];
        assert_eq!(
            records(feed(&mut parser(), &lines)),
            [
                rec(StreamKind::Stderr, b"hi", 0),
                rec(StreamKind::Stdout, b"there", lines[0].len() as u64 + 1)
            ]
        );
    }

    #[test]
    fn escaped_time_and_stream_are_accepted() {
        let line = br#"{"log":"x\n","stream":"std\u006fut","time":"2019-01-01T00:00:00.5\u005a"}"#;
        let r = parser()
            .push(line, 0, false)
            .map(|r| r.map(|r| (r.ts.to_owned(), r.stream)));
        assert_eq!(
            r,
            Ok(Some((
                "2019-01-01T00:00:00.5Z".to_owned(),
                StreamKind::Stdout
            )))
        );
    }

    #[test]
    fn malformed_entries_do_not_disturb_a_pending_join() {
        let lines: Vec<Vec<u8>> = vec![
            docker_line("first ", "stdout"),
            b"{not json".to_vec(),
            b"".to_vec(),
            b"[1,2]".to_vec(),
            br#"{"log":"x\n","stream":"stdout","time":"2019-01-01T00:00:00Z"} trailing"#.to_vec(),
            br#"{"log":1,"stream":"stdout","time":"2019-01-01T00:00:00Z"}"#.to_vec(),
            br#"{"log":"x\n","log":"y\n","stream":"stdout","time":"2019-01-01T00:00:00Z"}"#
                .to_vec(),
            br#"{"stream":"stdout","time":"2019-01-01T00:00:00Z"}"#.to_vec(),
            br#"{"log":"x\n","time":"2019-01-01T00:00:00Z"}"#.to_vec(),
            br#"{"log":"x\n","stream":"stdout"}"#.to_vec(),
            br#"{"log":"x\n","stream":"stdin","time":"2019-01-01T00:00:00Z"}"#.to_vec(),
            br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#.to_vec(),
            br#"{"log":"x\n","stream":"stdout","time":"2019-01-01T00:00:00Z""#.to_vec(),
            docker_line("second\n", "stdout"),
        ];
        let mut p = parser();
        let mut out = feed(&mut p, &lines);
        let last = out.pop().unwrap();
        assert_eq!(out[0], Ok(None));
        for bad in &out[1..7] {
            assert!(matches!(bad, Err(Malformed::BadJson(_))), "{bad:?}");
        }
        assert_eq!(
            out[7..12],
            [
                Err(Malformed::MissingField("log")),
                Err(Malformed::MissingField("stream")),
                Err(Malformed::MissingField("time")),
                Err(Malformed::BadStream),
                Err(Malformed::BadTimestamp),
            ]
        );
        assert!(matches!(out[12], Err(Malformed::BadJson(_))));
        assert_eq!(last, Ok(Some(rec(StreamKind::Stdout, b"first second", 0))));
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn stream_partials_are_independent() {
        let lines = [
            docker_line("o1 ", "stdout"),
            docker_line("e1 ", "stderr"),
            docker_line("e2\n", "stderr"),
            docker_line("o2\n", "stdout"),
        ];
        let second = lines[0].len() as u64 + 1;
        assert_eq!(
            records(feed(&mut parser(), &lines)),
            [
                rec(StreamKind::Stderr, b"e1 e2", second),
                rec(StreamKind::Stdout, b"o1 o2", 0)
            ]
        );
    }

    #[test]
    fn truncates_and_honours_reader_cut() {
        let mut p = Parser::new(Format::DockerJson, 4);
        let out = feed(
            &mut p,
            &[
                docker_line("abc", "stdout"),
                docker_line("def", "stdout"),
                docker_line("ghi\n", "stdout"),
                docker_line("wxyz\n", "stdout"),
                docker_line("vwxyz\n", "stdout"),
            ],
        );
        let got: Vec<(Vec<u8>, bool)> = records(out)
            .into_iter()
            .map(|r| (r.message, r.truncated))
            .collect();
        assert_eq!(
            got,
            [
                (b"abcd".to_vec(), true),
                (b"wxyz".to_vec(), false),
                (b"vwxy".to_vec(), true)
            ]
        );
        let cut = push(&mut p, &docker_line("ok\n", "stdout"), 0, true)
            .unwrap()
            .unwrap();
        assert!(cut.truncated);
    }
}
