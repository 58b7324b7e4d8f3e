//! The agent's NDJSON records (CONTRACT §4) read back for `fetch`: the counterpart of `encode`.
//! Records the agent writes are flat objects of strings, integers and nulls, so they are scanned
//! directly, strings borrowed from the line (serde_json's derive was the largest cost of a
//! fetch). Whatever the scanner is not sure of — nested values, escaped or non-ASCII keys, a field
//! twice, numbers that are not plain integers — goes to serde_json, so what a line decodes to, and
//! which lines are errors, is serde_json's answer.

use crate::contract::RecordRead;
use std::borrow::Cow;

/// One record from one line (without its newline).
pub fn record(line: &[u8]) -> serde_json::Result<RecordRead<'_>> {
    match scan(line) {
        Some(r) => Ok(r),
        None => serde_json::from_slice(line),
    }
}

/// The fast path alone: `None` where serde_json has to decide.
fn scan(line: &[u8]) -> Option<RecordRead<'_>> {
    let mut s = Scanner { b: line, i: 0 };
    let mut f = Fields::default();
    s.ws();
    s.eat(b'{')?;
    loop {
        s.ws();
        let key = s.key()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        s.field(key, &mut f)?;
        s.ws();
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    (s.i == line.len()).then_some(())?;
    f.finish()
}

/// The fields `RecordRead` takes, each at most once; `message_b64` holds `Some(None)` for null.
#[derive(Default)]
struct Fields<'a> {
    ts: Option<Cow<'a, str>>,
    stream: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    message_b64: Option<Option<Cow<'a, str>>>,
    truncated: Option<bool>,
    offset: Option<u64>,
    pod: Option<Cow<'a, str>>,
    pod_uid: Option<Cow<'a, str>>,
    container: Option<Cow<'a, str>>,
    restart: Option<u32>,
    attempt: Option<u32>,
}

impl<'a> Fields<'a> {
    fn finish(self) -> Option<RecordRead<'a>> {
        Some(RecordRead {
            ts: self.ts?,
            stream: self.stream?,
            message: self.message?,
            message_b64: self.message_b64.flatten(),
            truncated: self.truncated.unwrap_or(false),
            offset: self.offset?,
            pod: self.pod?,
            pod_uid: self.pod_uid?,
            container: self.container?,
            restart: self.restart?,
            attempt: self.attempt?,
        })
    }
}

/// The string content before the next `"` or `\\` (its length, and whether it is all ASCII);
/// `None` if there is no such byte or the content holds a control character, which JSON forbids.
fn plain_run(b: &[u8]) -> Option<(usize, bool)> {
    let n = memchr::memchr2(b'"', b'\\', b)?;
    let run = &b[..n];
    // One branch-free pass the compiler vectorises: printable ASCII is the common case.
    if run
        .iter()
        .fold(true, |ok, &c| ok & (c.wrapping_sub(0x20) < 0x60))
    {
        return Some((n, true));
    }
    (!run.iter().any(|&c| c < 0x20)).then_some((n, false))
}

/// Fill an empty slot; a second value for it is serde_json's "duplicate field" error.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn field(&mut self, key: &[u8], f: &mut Fields<'a>) -> Option<()> {
        match key {
            b"ts" => once(&mut f.ts, self.string()?),
            b"stream" => once(&mut f.stream, self.string()?),
            b"message" => once(&mut f.message, self.string()?),
            b"message_b64" => {
                let v = if self.literal(b"null") {
                    None
                } else {
                    Some(self.string()?)
                };
                once(&mut f.message_b64, v)
            }
            b"truncated" => once(&mut f.truncated, self.boolean()?),
            b"offset" => once(&mut f.offset, self.uint()?),
            b"pod" => once(&mut f.pod, self.string()?),
            b"pod_uid" => once(&mut f.pod_uid, self.string()?),
            b"container" => once(&mut f.container, self.string()?),
            b"restart" => once(&mut f.restart, u32::try_from(self.uint()?).ok()?),
            b"attempt" => once(&mut f.attempt, u32::try_from(self.uint()?).ok()?),
            _ => self.skip_value(),
        }
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn literal(&mut self, lit: &[u8]) -> bool {
        let found = self.b[self.i..].starts_with(lit);
        if found {
            self.i += lit.len();
        }
        found
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.literal(b"true") {
            Some(true)
        } else if self.literal(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// A key without escapes, ASCII (all of the contract's are).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let (n, ascii) = plain_run(rest)?;
        (rest[n] == b'"' && ascii).then_some(())?;
        self.i += n + 1;
        Some(&rest[..n])
    }

    /// A string value: borrowed when it has no escapes, as serde_json does.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let (n, ascii) = plain_run(rest)?;
        match rest[n] {
            b'"' => {
                self.i += n + 1;
                let plain = &rest[..n];
                if ascii {
                    // SAFETY: every byte is below 0x80, so this is ASCII and therefore UTF-8.
                    Some(Cow::Borrowed(unsafe {
                        std::str::from_utf8_unchecked(plain)
                    }))
                } else {
                    std::str::from_utf8(plain).ok().map(Cow::Borrowed)
                }
            }
            _ => {
                let mut out = Vec::with_capacity(rest.len());
                self.unescape(&mut out)?;
                String::from_utf8(out).ok().map(Cow::Owned)
            }
        }
    }

    /// The rest of a string from `self.i`, escapes decoded into `out`, up to its closing quote.
    fn unescape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        loop {
            let rest = &self.b[self.i..];
            let (n, _) = plain_run(rest)?;
            out.extend_from_slice(&rest[..n]);
            self.i += n + 1;
            if rest[n] == b'"' {
                return Some(());
            }
            self.escape(out)?;
        }
    }

    /// Past the rest of a string, escapes checked (as serde_json checks an ignored string:
    /// escapes and control characters, not UTF-8).
    fn skip_string(&mut self) -> Option<()> {
        let mut scratch = Vec::new();
        loop {
            let rest = &self.b[self.i..];
            let (n, _) = plain_run(rest)?;
            self.i += n + 1;
            if rest[n] == b'"' {
                return Some(());
            }
            scratch.clear();
            self.escape(&mut scratch)?;
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let c = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode(out),
            _ => return None,
        };
        out.push(c);
        Some(())
    }

    /// `\uXXXX` (after the `u`), a surrogate pair as one character; a lone surrogate is left
    /// to serde_json.
    fn unicode(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            self.eat(b'\\')?;
            self.eat(b'u')?;
            let lo = self.hex4()?;
            (0xDC00..0xE000).contains(&lo).then_some(())?;
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        let ch = char::from_u32(code)?;
        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits
            .iter()
            .try_fold(0, |v, &c| Some(v * 16 + char::from(c).to_digit(16)?))
    }

    /// A non-negative integer as JSON writes it (no sign, fraction, exponent or leading zero).
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.b[start] == b'0';
        let more = matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !more).then_some(v)
    }

    /// A value of a field `RecordRead` does not take: checked as serde_json checks it, not kept.
    fn skip_value(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                self.skip_string()
            }
            b'n' => self.literal(b"null").then_some(()),
            b't' | b'f' => self.boolean().map(drop),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    fn skip_number(&mut self) -> Option<()> {
        self.literal(b"-");
        let digits = |s: &mut Self| {
            let start = s.i;
            while matches!(s.b.get(s.i), Some(b'0'..=b'9')) {
                s.i += 1;
            }
            s.i - start
        };
        let first = self.b.get(self.i).copied();
        let int = digits(self);
        (int == 1 || (int > 1 && first != Some(b'0'))).then_some(())?;
        if self.literal(b".") {
            (digits(self) > 0).then_some(())?;
        }
        if self.literal(b"e") || self.literal(b"E") {
            let _ = self.literal(b"+") || self.literal(b"-");
            (digits(self) > 0).then_some(())?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::parse::{Record, StreamKind};
    use proptest::prelude::*;

    fn same(a: &RecordRead<'_>, b: &RecordRead<'_>) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    /// The fast path may decline a line, but what it accepts serde_json accepts alike.
    fn agrees(line: &[u8]) -> Result<(), TestCaseError> {
        if let Some(fast) = scan(line) {
            let slow = serde_json::from_slice::<RecordRead>(line);
            prop_assert!(
                slow.is_ok(),
                "{:?}: fast {fast:?}, serde {slow:?}",
                String::from_utf8_lossy(line)
            );
            prop_assert!(
                same(&fast, &slow.unwrap()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        Ok(())
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "(?s).{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"a": [1, "b"]})),
        ]
    }

    fn field() -> impl Strategy<Value = (String, serde_json::Value)> {
        let names = prop_oneof![
            Just("ts"),
            Just("stream"),
            Just("message"),
            Just("message_b64"),
            Just("truncated"),
            Just("offset"),
            Just("pod"),
            Just("pod_uid"),
            Just("container"),
            Just("restart"),
            Just("attempt"),
            Just("job"),
            Just("p\u{e9}d"),
            Just("po\\u0064"),
        ];
        (names, value()).prop_map(|(n, v)| (n.to_string(), v))
    }

    fn complete() -> Vec<(String, serde_json::Value)> {
        let rec = serde_json::json!({"ts": "2026-11-27T00:00:00Z", "stream": "stdout",
            "message": "m", "offset": 7, "pod": "p", "pod_uid": "u", "container": "c",
            "restart": 0, "attempt": 1});
        rec.as_object().unwrap().clone().into_iter().collect()
    }

    fn set(fields: &mut [(String, serde_json::Value)], name: &str, v: serde_json::Value) {
        fields
            .iter_mut()
            .find(|(k, _)| k == name)
            .expect("a contract field")
            .1 = v;
    }

    /// Fields written by hand, so keys can repeat and `po\u0064` stays escaped.
    fn line(fields: &[(String, serde_json::Value)], sep: &str) -> Vec<u8> {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\"{sep}:{sep}{v}"))
            .collect();
        format!("{sep}{{{}}}{sep}", body.join(",")).into_bytes()
    }

    proptest! {
        #[test]
        fn whatever_the_fast_path_takes_serde_json_decodes_alike(
            extra in proptest::collection::vec(field(), 0..6),
            drop in proptest::option::of(0usize..9),
            at in 0usize..10,
            sep in prop_oneof![Just(""), Just(" "), Just("\t\r ")],
        ) {
            let mut fields = complete();
            if let Some(d) = drop {
                fields.remove(d);
            }
            for (i, f) in extra.into_iter().enumerate() {
                fields.insert((at + i).min(fields.len()), f);
            }
            agrees(&line(&fields, sep))?;
        }

        #[test]
        fn a_damaged_line_is_never_read_differently(
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            message in "(?s).{0,40}",
        ) {
            let mut fields = complete();
            set(&mut fields, "message", message.into());
            let mut l = line(&fields, "");
            let i = pos.index(l.len());
            l[i] = byte;
            agrees(&l)?;
            agrees(&l[..i])?;
        }

        #[test]
        fn every_record_the_agent_writes_takes_the_fast_path(
            message in proptest::collection::vec(any::<u8>(), 0..200),
            truncated in any::<bool>(),
        ) {
            let rec = Record {
                ts: "2026-11-27T14:53:39.123456789Z",
                stream: StreamKind::Stdout,
                message: &message,
                offset: 1 << 40,
                truncated,
            };
            let mut out = Vec::new();
            Encoder::new(&crate::encode::tests::meta()).encode(&rec, &mut out);
            let l = out.strip_suffix(b"\n").unwrap_or(&out);
            let fast = scan(l);
            prop_assert!(fast.is_some(), "{}", String::from_utf8_lossy(l));
            agrees(l)?;
        }
    }

    #[test]
    fn escapes_and_surrogate_pairs_are_decoded() {
        let mut fields = complete();
        set(
            &mut fields,
            "message",
            "tab\t quote\" \u{1F600} \u{0}".into(),
        );
        let l = line(&fields, "");
        assert!(String::from_utf8_lossy(&l).contains("\\t"));
        let fast = scan(&l).expect("fast path");
        assert_eq!(fast.message, "tab\t quote\" \u{1F600} \u{0}");
        let pair = String::from_utf8(l)
            .unwrap()
            .replace('\u{1F600}', "\\ud83d\\ude00");
        assert_eq!(
            scan(pair.as_bytes()).expect("fast path").message,
            "tab\t quote\" \u{1F600} \u{0}"
        );
        let lone = pair.replace("\\ude00", "x");
        assert!(scan(lone.as_bytes()).is_none());
        assert!(record(lone.as_bytes()).is_err());
    }

    #[test]
    fn what_the_fast_path_declines_serde_json_still_reads() {
        let mut fields = complete();
        fields.push(("labels".into(), serde_json::json!({"a": [1]})));
        fields.push(("offset2".into(), serde_json::json!(-1.5e3)));
        let l = line(&fields, " ");
        assert!(scan(&l).is_none());
        assert_eq!(record(&l).unwrap().offset, 7);
        let dup = line(&[complete(), complete()].concat(), "");
        assert!(record(&dup).is_err());
    }
}
