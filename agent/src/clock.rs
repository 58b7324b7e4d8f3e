//! The wall clock, read in the units the agent uses (ms for heartbeats and /metrics, seconds for
//! file marks, nanoseconds for log-line times, RFC 3339 for documents), and RFC 3339 parsed
//! to nanoseconds. One place, so every stage reads and compares times alike.
//!
//! A clock before the epoch reads as 0 (never happens on a node; not worth an error path).

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// Whole seconds since the epoch.
pub fn now_unix() -> i64 {
    since_epoch().as_secs() as i64
}

/// Seconds since the epoch, with the fraction.
pub fn now_unix_f64() -> f64 {
    since_epoch().as_secs_f64()
}

/// Nanoseconds since the epoch (the unit of log-line times).
pub fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// Now as RFC 3339 in UTC (a manifest's `updated`).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Parse an RFC 3339 timestamp to nanoseconds since the epoch (runtime timestamps trim trailing
/// zeros of the fraction, so they do not compare as strings).
pub fn rfc3339_nanos(ts: &str) -> Option<i128> {
    OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_fractions_compare_as_times() {
        assert!(
            rfc3339_nanos("2026-11-27T14:53:39.1Z").unwrap()
                < rfc3339_nanos("2026-11-27T14:53:39.12345Z").unwrap()
        );
        assert_eq!(
            rfc3339_nanos("1970-01-01T00:00:01+00:00"),
            Some(1_000_000_000)
        );
        assert_eq!(rfc3339_nanos("yesterday"), None);
    }
}
