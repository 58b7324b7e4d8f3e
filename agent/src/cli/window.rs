//! `fetch --since/--until`: the time window, from RFC 3339 times or durations back from now
//! (`2h`, `1h30m`, `90s`, `7d`), applied to records by their `ts` and to whole objects by the
//! manifest's `first_ts`/`last_ts`, so a long job's objects outside the window are never read.

use crate::clock::rfc3339_nanos;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Records are written in file order, and stdout and stderr reach the runtime through separate
/// pipes, so an object's first and last `ts` are not strictly its earliest and latest: whole
/// objects are skipped only when they lie this far outside the window. Records are still
/// filtered exactly.
const OBJECT_SLACK_NANOS: i128 = 60 * NANOS_PER_SEC;

/// `since <= ts < until`, in nanoseconds since the epoch; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    since: Option<i128>,
    until: Option<i128>,
}

impl Window {
    pub fn parse(since: Option<&str>, until: Option<&str>, now: i128) -> Result<Window, String> {
        let w = Window {
            since: since.map(|s| instant("--since", s, now)).transpose()?,
            until: until.map(|s| instant("--until", s, now)).transpose()?,
        };
        match (w.since, w.until) {
            (Some(a), Some(b)) if a >= b => Err("--since must be before --until".into()),
            _ => Ok(w),
        }
    }

    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// A record's timestamp is in the window. With a bound set, an unreadable one is not.
    pub fn contains(&self, ts: &str) -> bool {
        if self.is_open() {
            return true;
        }
        rfc3339_nanos(ts)
            .is_some_and(|t| self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u))
    }

    /// An object whose records run from `first_ts` to `last_ts` may hold a record in the window.
    pub fn may_hold(&self, first_ts: &str, last_ts: &str) -> bool {
        let (Some(first), Some(last)) = (rfc3339_nanos(first_ts), rfc3339_nanos(last_ts)) else {
            return true;
        };
        let after_since = self
            .since
            .is_none_or(|s| last.max(first) >= s - OBJECT_SLACK_NANOS);
        let before_until = self
            .until
            .is_none_or(|u| first.min(last) < u + OBJECT_SLACK_NANOS);
        after_since && before_until
    }
}

/// An RFC 3339 time, or a duration back from `now`.
fn instant(flag: &str, value: &str, now: i128) -> Result<i128, String> {
    if let Some(t) = rfc3339_nanos(value) {
        return Ok(t);
    }
    duration_nanos(value).map(|d| now - d).ok_or_else(|| {
        format!("{flag} takes an RFC 3339 time (2026-11-27T14:00:00Z) or a duration back from now (90s, 15m, 2h, 1h30m, 7d), not {value:?}")
    })
}

/// `1h30m` → nanoseconds: numbers, each followed by a unit s, m, h or d.
fn duration_nanos(s: &str) -> Option<i128> {
    let mut total: i128 = 0;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: i128 = std::mem::take(&mut digits).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit * NANOS_PER_SEC)?)?;
    }
    (digits.is_empty() && !s.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-27T14:00:00Z";

    fn now() -> i128 {
        rfc3339_nanos(NOW).unwrap()
    }

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(duration_nanos("90s"), Some(90 * NANOS_PER_SEC));
        assert_eq!(duration_nanos("1h30m"), Some(5400 * NANOS_PER_SEC));
        assert_eq!(duration_nanos("2d"), Some(172_800 * NANOS_PER_SEC));
        for bad in ["", "2", "h", "2x", "-2h", "1.5h"] {
            assert_eq!(duration_nanos(bad), None, "{bad}");
        }
        let w = Window::parse(Some("2h"), Some("2026-11-27T13:30:00.5Z"), now()).unwrap();
        assert!(!w.contains("2026-11-27T11:59:59.999999999Z"));
        assert!(w.contains("2026-11-27T12:00:00Z"));
        assert!(w.contains("2026-11-27T13:30:00.4Z"));
        assert!(!w.contains("2026-11-27T13:30:00.5Z"));
        assert!(!w.contains("not a time"));
        assert!(Window::parse(None, None, now())
            .unwrap()
            .contains("not a time"));
        assert!(Window::parse(Some("1h"), Some("2h"), now()).is_err());
        let e = Window::parse(Some("yesterday"), None, now()).unwrap_err();
        assert!(e.contains("--since") && e.contains("yesterday"), "{e}");
    }

    #[test]
    fn objects_are_skipped_only_well_outside_the_window() {
        let w = Window::parse(Some("2026-11-27T12:00:00Z"), Some("1h"), now()).unwrap();
        let hold = |a, b| w.may_hold(a, b);
        assert!(!hold("2026-11-27T11:00:00Z", "2026-11-27T11:58:00Z"));
        assert!(hold("2026-11-27T11:00:00Z", "2026-11-27T11:59:30Z"));
        assert!(hold("2026-11-27T12:30:00Z", "2026-11-27T12:31:00Z"));
        assert!(hold("2026-11-27T13:00:30Z", "2026-11-27T13:10:00Z"));
        assert!(!hold("2026-11-27T13:02:00Z", "2026-11-27T13:10:00Z"));
        assert!(hold("", ""), "no times: read it");
    }
}
