//! The report as people and programs read it: a plain-text table with totals, recommendation
//! and findings; JSON (CONTRACT §5); CSV with raw numbers for spreadsheets.

use std::fmt::Write as _;

use super::units::{
    byte_seconds_unit, fmt_byte_seconds, fmt_bytes, fmt_duration, fmt_in_unit, fmt_millicores,
    fmt_number, fmt_percent,
};
use super::{cpu_rate, efficiency, plural, Report};
use crate::footprint::timeline::is_routine_waiting;
use crate::footprint::Footprint;

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

fn outcome_words(f: &Footprint) -> String {
    let phase = f.phase.clone().unwrap_or_else(|| "unknown".to_string());
    if f.deleted.is_some() && f.finished.is_none() {
        format!("{phase}, deleted")
    } else {
        phase
    }
}

/// A plain-text table: a header, then rows; numbers right-aligned.
struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn render(&self, out: &mut String) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.right)
                .map(|((cell, w), right)| {
                    if *right {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
    }
}

impl Report {
    fn title(&self) -> String {
        let mut title = match (&self.job, &self.cronjob) {
            (Some(job), _) => format!("job {job}"),
            (None, Some(cj)) => format!("cronjob {cj} ({} jobs)", self.jobs.len()),
            (None, None) => "job -".to_string(),
        };
        let _ = write!(title, "  namespace {}", self.namespace);
        if let Some(uid) = &self.job_uid {
            let _ = write!(title, "  job_uid {uid}");
        }
        if let (Some(cj), Some(_)) = (&self.cronjob, &self.job) {
            let _ = write!(title, "  cronjob {cj}");
        }
        title
    }

    /// The human-readable report: one row per attempt, totals, recommendation, findings.
    pub fn to_table(&self) -> String {
        let many_jobs = self.jobs.len() > 1;
        let unit = byte_seconds_unit(
            self.attempts
                .iter()
                .flat_map(|f| [f.reserved_memory_byte_seconds, f.used_memory_byte_seconds])
                .flatten()
                .fold(0.0, f64::max),
        );
        let mut header = vec![
            "attempt", "pod", "outcome", "exit", "duration", "waiting", "mem req", "mem peak",
            "cpu req", "cpu avg", "reserved", "used", "eff",
        ];
        let mut right = vec![
            true, false, false, false, true, false, true, true, true, true, true, true, true,
        ];
        if many_jobs {
            header.insert(0, "job");
            right.insert(0, false);
        }
        let rows = self
            .attempts
            .iter()
            .map(|f| {
                let waiting = f
                    .waiting_seconds
                    .map(|w| match f.waiting_reason.as_deref() {
                        Some(r) if !is_routine_waiting(r) => format!("{} {r}", fmt_duration(w)),
                        _ => fmt_duration(w),
                    });
                let exit = match (f.exit_code, f.reason.as_deref()) {
                    (Some(code), Some(reason)) => Some(format!("{code} {reason}")),
                    (Some(code), None) => Some(code.to_string()),
                    (None, Some(reason)) => Some(reason.to_string()),
                    (None, None) => None,
                };
                let efficiency = efficiency(f).map(fmt_percent);
                let mut row = vec![
                    f.attempt.to_string(),
                    f.pod.clone(),
                    outcome_words(f),
                    or_dash(exit),
                    or_dash(f.running_seconds().map(fmt_duration)),
                    or_dash(waiting),
                    or_dash(f.memory_request_bytes.map(fmt_bytes)),
                    or_dash(f.memory_peak_bytes.map(fmt_bytes)),
                    or_dash(f.cpu_request_millicores.map(|m| format!("{m}m"))),
                    or_dash(cpu_rate(f).map(|r| fmt_millicores(r * 1000.0))),
                    or_dash(f.reserved_memory_byte_seconds.map(|v| fmt_in_unit(v, unit))),
                    or_dash(f.used_memory_byte_seconds.map(|v| fmt_in_unit(v, unit))),
                    or_dash(efficiency),
                ];
                if many_jobs {
                    row.insert(0, f.job.clone());
                }
                row
            })
            .collect();

        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title());
        let _ = writeln!(out);
        Table {
            header,
            right,
            rows,
        }
        .render(&mut out);
        let t = &self.totals;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "totals: {} attempt{} ({} succeeded, {} failed, {} unfinished); requests held {}{}; waiting {}; running {}",
            t.attempts,
            plural(t.attempts),
            t.succeeded,
            t.failed,
            t.unfinished,
            fmt_duration(t.held_seconds),
            t.span_seconds.map_or(String::new(), |s| format!(" within a {} span", fmt_duration(s))),
            fmt_duration(t.waiting_seconds),
            fmt_duration(t.running_seconds),
        );
        let _ = writeln!(
            out,
            "        memory reserved {}, used {}{}; highest peak {}; cpu used {}{}",
            or_dash(t.reserved_memory_byte_seconds.map(fmt_byte_seconds)),
            or_dash(t.used_memory_byte_seconds.map(fmt_byte_seconds)),
            t.efficiency.map_or(String::new(), |e| format!(
                " (efficiency {})",
                fmt_percent(e)
            )),
            or_dash(t.memory_peak_bytes.map(fmt_bytes)),
            or_dash(
                t.cpu_usage_seconds
                    .map(|c| format!("{} CPU-s", fmt_number(c)))
            ),
            if t.oom_kills > 0 {
                format!("; {} OOM kills", t.oom_kills)
            } else {
                String::new()
            },
        );
        let r = &self.recommendation;
        let _ = writeln!(
            out,
            "recommendation: memory request {}, cpu request {} ({}% headroom)",
            or_dash(r.memory_request_bytes.map(fmt_bytes)),
            or_dash(r.cpu_request_millicores.map(|m| format!("{m}m"))),
            self.headroom_percent,
        );
        let _ = writeln!(out, "  {}", r.memory_basis);
        let _ = writeln!(out, "  {}", r.cpu_basis);
        if !self.flags.is_empty() {
            let _ = writeln!(out, "flags:");
            for flag in &self.flags {
                let _ = writeln!(out, "  - {flag}");
            }
        }
        out
    }

    /// One object (CONTRACT §5): job, namespace, job_uid, cronjob, attempts, totals,
    /// recommendation, flags.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// One row per attempt with raw numbers (bytes, seconds, millicores), for spreadsheets.
    pub fn to_csv(&self) -> String {
        const HEADER: [&str; 28] = [
            "job",
            "job_uid",
            "cronjob",
            "namespace",
            "attempt",
            "pod",
            "pod_uid",
            "node",
            "phase",
            "reason",
            "exit_code",
            "created",
            "scheduled",
            "started",
            "finished",
            "running_seconds",
            "waiting_seconds",
            "waiting_reason",
            "memory_request_bytes",
            "memory_limit_bytes",
            "memory_peak_bytes",
            "cpu_request_millicores",
            "cpu_limit_millicores",
            "cpu_usage_seconds",
            "reserved_memory_byte_seconds",
            "used_memory_byte_seconds",
            "efficiency",
            "oom_kills",
        ];
        fn cell<T: ToString>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let mut out = HEADER.join(",");
        out.push('\n');
        for f in &self.attempts {
            let row = [
                f.job.clone(),
                cell(f.job_uid.as_ref()),
                cell(f.cronjob.as_ref()),
                f.namespace.clone(),
                f.attempt.to_string(),
                f.pod.clone(),
                f.pod_uid.clone(),
                f.node.clone(),
                cell(f.phase.as_ref()),
                cell(f.reason.as_ref()),
                cell(f.exit_code),
                cell(f.created.as_ref()),
                cell(f.scheduled.as_ref()),
                cell(f.started.as_ref()),
                cell(f.finished.as_ref()),
                cell(f.running_seconds()),
                cell(f.waiting_seconds),
                cell(f.waiting_reason.as_ref()),
                cell(f.memory_request_bytes),
                cell(f.memory_limit_bytes),
                cell(f.memory_peak_bytes),
                cell(f.cpu_request_millicores),
                cell(f.cpu_limit_millicores),
                cell(f.cpu_usage_seconds),
                cell(f.reserved_memory_byte_seconds),
                cell(f.used_memory_byte_seconds),
                cell(efficiency(f)),
                cell(f.oom_kills),
            ];
            let quoted: Vec<String> = row.iter().map(|c| csv_quote(c)).collect();
            out.push_str(&quoted.join(","));
            out.push('\n');
        }
        out
    }
}

fn csv_quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::seeds::*;
    use super::super::{build_report, GIB};
    use super::*;

    #[test]
    fn csv_has_one_row_per_attempt_with_raw_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let report = build_report(exit_nonzero(tmp.path()), 20);
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 7);
        let header: Vec<&str> = lines[0].split(',').collect();
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(header.len(), row.len());
        let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        assert_eq!(col("pod"), "exit-nonzero-szsld");
        assert_eq!(col("memory_request_bytes"), "1073741824");
        assert_eq!(
            col("reserved_memory_byte_seconds"),
            (31.0 * GIB as f64).to_string()
        );
        assert_eq!(col("exit_code"), "1");
        assert_eq!(col("cronjob"), "");
        assert_eq!(csv_quote("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn empty_reports_still_print() {
        let report = build_report(Vec::new(), 20);
        assert_eq!(report.totals.attempts, 0);
        assert!(report
            .to_table()
            .contains("recommendation: memory request -, cpu request -"));
        assert_eq!(report.to_csv().lines().count(), 1);
    }

    #[test]
    fn seed_tables_have_a_title_totals_and_a_recommendation() {
        let tmp = tempfile::tempdir().unwrap();
        for footprints in [
            exit_nonzero(tmp.path()),
            invalid_secret(tmp.path()),
            over_provisioned(tmp.path()),
        ] {
            let job = footprints[0].job.clone();
            let table = build_report(footprints, 20).to_table();
            assert!(
                table.starts_with(&format!("job {job}  namespace ")),
                "{table}"
            );
            for line in ["totals: ", "recommendation: memory request "] {
                assert!(table.contains(line), "{line:?} missing from\n{table}");
            }
        }
    }
}
