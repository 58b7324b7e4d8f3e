//! Numbers as people write them in reports: bytes in KiB/MiB/GiB, byte-seconds in GiB·s/min/h,
//! durations as 5m00s or 1h02m, about three significant digits. Shared by the report's findings
//! and table, the plot's axes and `describe`.

/// Binary units.
const KIB: f64 = 1024.0;
pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const GIB: u64 = 1 << 30;

/// About three significant digits, without trailing zeros: "1.25", "64", "439", "0.0047".
pub(crate) fn fmt_number(v: f64) -> String {
    let text = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 || v <= 0.0 {
        format!("{v:.2}")
    } else {
        let decimals = (2 - v.log10().floor() as i32).clamp(2, 6) as usize;
        format!("{v:.decimals$}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

pub(crate) fn fmt_bytes(bytes: u64) -> String {
    fmt_bytes_f(bytes as f64)
}

pub(crate) fn fmt_bytes_f(bytes: f64) -> String {
    let units = [("GiB", GIB as f64), ("MiB", MIB as f64), ("KiB", KIB)];
    for (unit, size) in units {
        if bytes >= size {
            return format!("{} {unit}", fmt_number(bytes / size));
        }
    }
    format!("{} B", bytes.round())
}

/// Byte-seconds in GiB·h, GiB·min or GiB·s, whichever keeps the number readable.
pub(crate) fn byte_seconds_unit(max: f64) -> (&'static str, f64) {
    let gib_s = GIB as f64;
    if max >= 0.1 * gib_s * 3600.0 {
        ("GiB·h", gib_s * 3600.0)
    } else if max >= 0.1 * gib_s * 60.0 {
        ("GiB·min", gib_s * 60.0)
    } else {
        ("GiB·s", gib_s)
    }
}

pub(crate) fn fmt_in_unit(value: f64, (unit, size): (&str, f64)) -> String {
    let v = value / size;
    if v == 0.0 {
        format!("0 {unit}")
    } else if v < 0.01 {
        format!("<0.01 {unit}")
    } else {
        format!("{} {unit}", fmt_number(v))
    }
}

pub(crate) fn fmt_byte_seconds(value: f64) -> String {
    fmt_in_unit(value, byte_seconds_unit(value))
}

pub(crate) fn fmt_duration(seconds: f64) -> String {
    // Also turns -0.0 (an empty float sum) into 0.
    let s = if seconds > 0.0 { seconds } else { 0.0 };
    if s < 10.0 {
        return format!("{}s", fmt_number(s));
    }
    let whole = s.round() as u64;
    match whole {
        0..60 => format!("{whole}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..86400 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86400, whole % 86400 / 3600),
    }
}

pub(crate) fn fmt_millicores(m: f64) -> String {
    if m > 0.0 && m < 1.0 {
        "<1m".to_string()
    } else {
        format!("{}m", m.round())
    }
}

pub(crate) fn fmt_percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p > 0.0 && p < 0.1 {
        "<0.1%".to_string()
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_like_a_person_writes_them() {
        assert_eq!(fmt_bytes(GIB), "1 GiB");
        assert_eq!(fmt_bytes(1280 * MIB), "1.25 GiB");
        assert_eq!(fmt_bytes(64 * MIB), "64 MiB");
        assert_eq!(fmt_bytes(450_000), "439 KiB");
        assert_eq!(fmt_bytes(12), "12 B");
        assert_eq!(fmt_byte_seconds(1.2 * 3600.0 * GIB as f64), "1.2 GiB·h");
        assert_eq!(fmt_byte_seconds(31.0 * GIB as f64), "0.517 GiB·min");
        assert_eq!(fmt_byte_seconds(0.0), "0 GiB·s");
        assert_eq!(fmt_duration(1.0), "1s");
        assert_eq!(fmt_duration(2.25), "2.25s");
        assert_eq!(fmt_duration(300.0), "5m00s");
        assert_eq!(fmt_duration(3725.0), "1h02m");
        assert_eq!(fmt_duration(93_600.0), "1d02h");
    }
}
