//! The encode stage: one parsed record → one NDJSON line of CONTRACT §4.
//!
//! The stream's constant metadata (cluster … completion_index) is serialized once, when the
//! stream opens, and copied after each record's own fields; per record only ts, stream, message
//! and offset are written, straight into the batch buffer.
//!
//! A live agent keeps thousands of batches open at once, under one memory budget: there a line
//! is held without the metadata (its "body", ended by a newline) and `expand` adds it when the
//! batch is compressed. The metadata is often as long as a short line: on the bench's lines the
//! same memory holds about 1.6x the lines, and many streams close ~37 % fewer objects.

use crate::contract::StreamMeta;
use crate::parse::Record;
use base64::Engine;
use std::sync::Arc;

pub struct Encoder {
    /// `,"cluster":…,"completion_index":…}\n`
    suffix: Arc<[u8]>,
}

impl Encoder {
    pub fn new(meta: &StreamMeta) -> Encoder {
        let json = serde_json::to_vec(meta).expect("metadata serializes");
        // `{"cluster":…}` → `,"cluster":…}\n`
        let mut suffix = Vec::with_capacity(json.len() + 1);
        suffix.push(b',');
        suffix.extend_from_slice(&json[1..]);
        suffix.push(b'\n');
        Encoder {
            suffix: suffix.into(),
        }
    }

    /// What `expand` adds to each body: the stream's metadata and the line's end.
    pub fn suffix(&self) -> &Arc<[u8]> {
        &self.suffix
    }

    /// Append one record's line to `out`.
    pub fn encode(&self, rec: &Record<'_>, out: &mut Vec<u8>) {
        self.encode_body(rec, out);
        out.extend_from_slice(&self.suffix);
    }

    /// Append one record's line without the stream's metadata, ended by a newline (JSON text
    /// holds no raw newline, so it marks where `expand` puts the metadata).
    pub fn encode_compact(&self, rec: &Record<'_>, out: &mut Vec<u8>) {
        self.encode_body(rec, out);
        out.push(b'\n');
    }

    fn encode_body(&self, rec: &Record<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":");
        write_json_str(out, rec.ts);
        out.extend_from_slice(b",\"stream\":\"");
        out.extend_from_slice(rec.stream.as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        match std::str::from_utf8(rec.message) {
            Ok(text) => write_json_str(out, text),
            Err(_) => {
                // Keep the exact bytes for whoever needs them; `message` stays readable.
                write_json_str(out, &String::from_utf8_lossy(rec.message));
                out.extend_from_slice(b",\"message_b64\":\"");
                let start = out.len();
                out.resize(
                    start + base64::encoded_len(rec.message.len(), true).unwrap_or(0),
                    0,
                );
                let n = base64::engine::general_purpose::STANDARD
                    .encode_slice(rec.message, &mut out[start..])
                    .expect("buffer sized by encoded_len");
                out.truncate(start + n);
                out.push(b'"');
            }
        }
        if rec.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(itoa_u64(rec.offset, &mut [0u8; 20]));
    }
}

/// Compact lines (`encode_compact`) → whole lines: each body's newline becomes `suffix`.
/// (`out` is best sized by the caller, who knows the number of lines.)
pub fn expand(compact: &[u8], suffix: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', compact) {
        out.extend_from_slice(&compact[start..end]);
        out.extend_from_slice(suffix);
        start = end + 1;
    }
    debug_assert_eq!(start, compact.len(), "compact lines end with a newline");
}

/// A JSON string, escaped as serde_json does. Most log text needs no escape at all, so runs of
/// plain bytes are found eight at a time and copied whole (this was a tenth of the agent's
/// CPU when done byte by byte).
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let mut b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    loop {
        let plain = plain_prefix(b);
        out.extend_from_slice(&b[..plain]);
        let Some(&c) = b.get(plain) else { break };
        write_escape(out, c);
        b = &b[plain + 1..];
    }
    out.push(b'"');
}

/// How many leading bytes of `b` are plain JSON string content (no control character, `"` or
/// `\\`): checked eight at a time.
fn plain_prefix(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        if word_needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
            break;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| needs_escape(c))
        .unwrap_or(b.len() - i)
}

fn needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// Whether any of the 8 bytes is a control character, `"` or `\\` (SWAR: a byte's high bit
/// is set in the mask only where that byte matched; no false answers for the whole word).
fn word_needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero_in(quote) | zero_in(backslash)) & HIGH != 0
}

fn write_escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0xf)],
        ]),
    }
}

fn itoa_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parse::StreamKind;

    pub(crate) fn meta() -> StreamMeta {
        StreamMeta {
            cluster: "c".into(),
            node: "n".into(),
            namespace: "default".into(),
            pod: "p-abcde".into(),
            pod_uid: "u".into(),
            container: "main".into(),
            restart: 0,
            job: "p".into(),
            job_uid: None,
            cronjob: Some("cj".into()),
            attempt: 2,
            completion_index: None,
        }
    }

    fn encode(message: &[u8], truncated: bool) -> serde_json::Value {
        let rec = Record {
            ts: "2026-11-27T14:53:39.123Z",
            stream: StreamKind::Stderr,
            message,
            offset: 1234,
            truncated,
        };
        let mut out = Vec::new();
        Encoder::new(&meta()).encode(&rec, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line per record"
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn records_carry_every_contract_field() {
        let v = encode(b"hello \"world\"\t\r\x01", false);
        assert_eq!(v["message"], "hello \"world\"\t\r\u{1}");
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["offset"], 1234);
        assert_eq!(v["cronjob"], "cj");
        assert_eq!(v["job_uid"], serde_json::Value::Null);
        assert_eq!(v["attempt"], 2);
        assert!(v.get("message_b64").is_none() && v.get("truncated").is_none());
    }

    proptest::proptest! {
        #[test]
        fn strings_are_escaped_exactly_as_serde_json_does(s in "(?s).{0,80}", pad in 0usize..9) {
            // Padding moves escapes across the 8-byte words of the fast path.
            let s = format!("{}{s}", "x".repeat(pad));
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn every_control_character_and_escape_round_trips() {
        let all: String = (0u8..0x80).map(char::from).chain("é€😀".chars()).collect();
        for start in 0..8 {
            let s = &all[start..];
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                serde_json::to_string(s).unwrap()
            );
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn invalid_utf8_keeps_exact_bytes() {
        let raw = b"caf\xe9 \xff end";
        let v = encode(raw, true);
        let b64 = v["message_b64"].as_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            raw
        );
        assert_eq!(v["message"], String::from_utf8_lossy(raw).as_ref());
        assert_eq!(v["truncated"], true);
    }
}
