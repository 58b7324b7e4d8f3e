//! The `report` command's model: per-attempt footprints of a Job (or of all Jobs of a CronJob)
//! put side by side, totalled, turned into a request recommendation and into findings in words.
//! `render` prints it as a table, JSON or CSV; `units` writes its numbers as people do.
//!
//! Recommendation rules (documented here because users will ask where a number came from):
//! - memory: the highest peak over the successful attempts (over all attempts when none
//!   succeeded), plus the headroom, rounded up to a multiple of 64 MiB up to 1 GiB and of
//!   128 MiB above: requests are read and compared by people, and finer steps only add noise.
//! - CPU: the highest average rate (CPU seconds ÷ running seconds) over the same attempts, plus
//!   the headroom, rounded up to a multiple of 10m below one core and of 50m above; at least 10m.

mod render;
mod units;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::timeline::is_routine_waiting;
use super::Footprint;
pub(crate) use units::{
    fmt_byte_seconds, fmt_bytes, fmt_bytes_f, fmt_duration, fmt_millicores, fmt_number, GIB, MIB,
};

/// The headroom the CLI uses when none is given.
pub const DEFAULT_HEADROOM_PERCENT: u32 = 20;

/// Waiting this long is worth a finding even for a routine reason (a slow image pull).
const LONG_WAIT_SECONDS: f64 = 300.0;

/// A request this far above the recommendation is reported as over-provisioned.
const OVERPROVISIONED_RATIO: f64 = 0.75;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Null for a CronJob report, which spans several Jobs (listed in `jobs`).
    pub job: Option<String>,
    pub namespace: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    pub headroom_percent: u32,
    pub attempts: Vec<Footprint>,
    pub totals: Totals,
    pub recommendation: Recommendation,
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub attempts: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Still pending or running, or ended without the API telling how.
    pub unfinished: usize,
    pub oom_kills: u64,
    /// Time any attempt held its requests, added up.
    pub held_seconds: f64,
    /// From the first attempt's scheduling to the last one's end: held time plus back-off gaps.
    pub span_seconds: Option<f64>,
    pub waiting_seconds: f64,
    pub running_seconds: f64,
    pub cpu_usage_seconds: Option<f64>,
    pub memory_peak_bytes: Option<u64>,
    pub reserved_memory_byte_seconds: Option<f64>,
    pub used_memory_byte_seconds: Option<f64>,
    /// Used ÷ reserved, over the attempts where both are known.
    pub efficiency: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub memory_request_bytes: Option<u64>,
    pub cpu_request_millicores: Option<u64>,
    /// Both halves below, as one text.
    pub basis: String,
    pub memory_basis: String,
    pub cpu_basis: String,
}

/// The report of one Job run: its attempts in order.
pub fn build_report(mut footprints: Vec<Footprint>, headroom_percent: u32) -> Report {
    footprints.sort_by(|a, b| {
        a.attempt
            .cmp(&b.attempt)
            .then_with(|| start_of(a).total_cmp(&start_of(b)))
    });
    let uids: BTreeSet<&str> = footprints
        .iter()
        .filter_map(|f| f.job_uid.as_deref())
        .collect();
    let mut flags = Vec::new();
    if uids.len() > 1 {
        flags.push(format!(
            "footprints of {} different runs of this job name are mixed (job_uid {}): pick one",
            uids.len(),
            uids.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    let first = footprints.first();
    let report = Report {
        job: first.map(|f| f.job.clone()),
        namespace: first.map(|f| f.namespace.clone()).unwrap_or_default(),
        job_uid: match uids.len() {
            1 => uids.first().map(|u| u.to_string()),
            _ => None,
        },
        cronjob: footprints.iter().find_map(|f| f.cronjob.clone()),
        ..Report::default()
    };
    complete(report, footprints, headroom_percent, flags)
}

/// All Jobs of one CronJob (`report --cronjob NAME`): their attempts in time order, one set of
/// totals and one recommendation, since the Jobs all run the same template.
pub fn build_cronjob_report(
    cronjob: &str,
    namespace: &str,
    mut footprints: Vec<Footprint>,
    headroom_percent: u32,
) -> Report {
    footprints.sort_by(|a, b| {
        start_of(a)
            .total_cmp(&start_of(b))
            .then_with(|| a.job.cmp(&b.job))
            .then_with(|| a.attempt.cmp(&b.attempt))
    });
    let mut jobs: Vec<String> = Vec::new();
    for f in &footprints {
        if !jobs.contains(&f.job) {
            jobs.push(f.job.clone());
        }
    }
    let report = Report {
        job: None,
        namespace: namespace.to_string(),
        job_uid: None,
        cronjob: Some(cronjob.to_string()),
        jobs,
        ..Report::default()
    };
    complete(report, footprints, headroom_percent, Vec::new())
}

fn start_of(f: &Footprint) -> f64 {
    f.held_interval().map_or(f64::INFINITY, |(start, _)| start)
}

fn complete(
    mut report: Report,
    attempts: Vec<Footprint>,
    headroom_percent: u32,
    mut flags: Vec<String>,
) -> Report {
    let many_jobs = report.jobs.len() > 1;
    let (recommendation, pool) = recommend(&attempts, headroom_percent, many_jobs);
    flags.extend(findings(
        &attempts,
        &recommendation,
        &pool,
        headroom_percent,
        many_jobs,
    ));
    report.totals = totals(&attempts);
    report.recommendation = recommendation;
    report.flags = flags;
    report.headroom_percent = headroom_percent;
    report.attempts = attempts;
    report
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Unfinished,
}

fn outcome(f: &Footprint) -> Outcome {
    if f.succeeded() {
        Outcome::Succeeded
    } else if f.phase.as_deref() == Some("Failed")
        || (f.phase.is_none() && f.exit_code.is_some_and(|c| c != 0))
    {
        Outcome::Failed
    } else {
        Outcome::Unfinished
    }
}

/// A float sum that is 0.0 when empty (`Sum` gives -0.0, which prints as "-0").
fn add(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

/// The sum of the known values; None when none is known.
fn sum_known(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let known: Vec<f64> = values.flatten().collect();
    (!known.is_empty()).then(|| add(known.into_iter()))
}

fn totals(attempts: &[Footprint]) -> Totals {
    let count = |o: Outcome| attempts.iter().filter(|f| outcome(f) == o).count();
    let held: Vec<(f64, f64)> = attempts
        .iter()
        .filter_map(Footprint::held_interval)
        .collect();
    let both: Vec<(f64, f64)> = attempts
        .iter()
        .filter_map(|f| Some((f.used_memory_byte_seconds?, f.reserved_memory_byte_seconds?)))
        .collect();
    let (used_both, reserved_both) = both
        .iter()
        .fold((0.0, 0.0), |(u, r), (fu, fr)| (u + fu, r + fr));
    Totals {
        attempts: attempts.len(),
        succeeded: count(Outcome::Succeeded),
        failed: count(Outcome::Failed),
        unfinished: count(Outcome::Unfinished),
        oom_kills: attempts
            .iter()
            .map(|f| {
                // The cgroup may be gone before the kill was counted; the reason still tells.
                let by_reason = u64::from(f.reason.as_deref() == Some("OOMKilled"));
                f.oom_kills.unwrap_or(0).max(by_reason)
            })
            .sum(),
        held_seconds: add(held.iter().map(|(s, e)| e - s)),
        span_seconds: held
            .iter()
            .map(|(s, _)| *s)
            .reduce(f64::min)
            .zip(held.iter().map(|(_, e)| *e).reduce(f64::max))
            .map(|(s, e)| e - s),
        waiting_seconds: add(attempts.iter().filter_map(|f| f.waiting_seconds)),
        running_seconds: add(attempts.iter().filter_map(Footprint::running_seconds)),
        cpu_usage_seconds: sum_known(attempts.iter().map(|f| f.cpu_usage_seconds)),
        memory_peak_bytes: attempts.iter().filter_map(|f| f.memory_peak_bytes).max(),
        reserved_memory_byte_seconds: sum_known(
            attempts.iter().map(|f| f.reserved_memory_byte_seconds),
        ),
        used_memory_byte_seconds: sum_known(attempts.iter().map(|f| f.used_memory_byte_seconds)),
        efficiency: (reserved_both > 0.0).then(|| used_both / reserved_both),
    }
}

/// Used ÷ reserved memory byte-seconds of one attempt.
pub(super) fn efficiency(f: &Footprint) -> Option<f64> {
    let reserved = f.reserved_memory_byte_seconds.filter(|r| *r > 0.0)?;
    Some(f.used_memory_byte_seconds? / reserved)
}

/// CPU cores used on average while running; None without usage data or a running time.
pub(super) fn cpu_rate(f: &Footprint) -> Option<f64> {
    let running = f.running_seconds()?;
    // Under a second of running time the rate is mostly rounding of the timestamps.
    if running < 1.0 {
        return None;
    }
    Some(f.cpu_usage_seconds? / running)
}

fn round_up(value: u64, step: u64) -> u64 {
    value.div_ceil(step).saturating_mul(step)
}

fn round_memory(bytes: u64) -> u64 {
    let step = if bytes <= GIB { 64 * MIB } else { 128 * MIB };
    round_up(bytes.max(1), step)
}

fn round_cpu(millicores: u64) -> u64 {
    let step = if millicores < 1000 { 10 } else { 50 };
    round_up(millicores.max(1), step)
}

fn with_headroom(value: f64, headroom_percent: u32) -> f64 {
    value * (100.0 + f64::from(headroom_percent)) / 100.0
}

/// How an attempt is named in words: by number, and by Job too when several are mixed.
fn label(f: &Footprint, many_jobs: bool) -> String {
    if many_jobs {
        format!("{} attempt {} ({})", f.job, f.attempt, f.pod)
    } else {
        format!("attempt {} ({})", f.attempt, f.pod)
    }
}

/// Which attempts the recommendation draws on, and how to say so.
struct Pool<'a> {
    attempts: Vec<&'a Footprint>,
    words: String,
}

fn pool(attempts: &[Footprint]) -> Pool<'_> {
    let measured = |f: &&Footprint| f.memory_peak_bytes.is_some() || f.cpu_usage_seconds.is_some();
    let succeeded: Vec<&Footprint> = attempts
        .iter()
        .filter(|f| f.succeeded())
        .filter(measured)
        .collect();
    if !succeeded.is_empty() {
        let n = succeeded.len();
        return Pool {
            attempts: succeeded,
            words: format!("from the {n} successful attempt{}", plural(n)),
        };
    }
    let all: Vec<&Footprint> = attempts.iter().filter(measured).collect();
    let why = if attempts.iter().any(|f| outcome(f) == Outcome::Unfinished) {
        "none has succeeded yet"
    } else {
        "none succeeded"
    };
    let n = all.len();
    Pool {
        attempts: all,
        words: format!("from all {n} measured attempt{}, as {why}", plural(n)),
    }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn recommend(
    attempts: &[Footprint],
    headroom_percent: u32,
    many_jobs: bool,
) -> (Recommendation, Pool<'_>) {
    let pool = pool(attempts);

    let peak = pool
        .attempts
        .iter()
        .filter_map(|f| Some((f.memory_peak_bytes?, *f)))
        .max_by_key(|(peak, _)| *peak);
    let memory = peak.map(|(peak, f)| {
        let target = with_headroom(peak as f64, headroom_percent).ceil() as u64;
        let rounded = round_memory(target);
        let step = if target <= GIB { "64 MiB" } else { "128 MiB" };
        let words = format!(
            "memory {}: highest peak {}, in {}, + {headroom_percent}% headroom = {}, rounded up to a multiple of {step}; peaks {}",
            fmt_bytes(rounded),
            fmt_bytes(peak),
            label(f, many_jobs),
            fmt_bytes(target),
            pool.words,
        );
        (rounded, words)
    });

    let rate = pool
        .attempts
        .iter()
        .filter_map(|f| Some((cpu_rate(f)?, *f)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let cpu = rate.map(|(rate, f)| {
        let target = with_headroom(rate * 1000.0, headroom_percent).ceil() as u64;
        let rounded = round_cpu(target);
        let words = format!(
            "cpu {rounded}m: highest average use {}, in {} with {} CPU-seconds over {} running, + {headroom_percent}% headroom = {target}m, rounded up to a multiple of {}m; rates {}",
            fmt_millicores(rate * 1000.0),
            label(f, many_jobs),
            fmt_number(f.cpu_usage_seconds.unwrap_or(0.0)),
            fmt_duration(f.running_seconds().unwrap_or(0.0)),
            if target < 1000 { 10 } else { 50 },
            pool.words,
        );
        (rounded, words)
    });

    let memory_basis = memory.as_ref().map_or_else(
        || "memory: no usage data (no cgroup samples of any attempt)".to_string(),
        |(_, words)| words.clone(),
    );
    let cpu_basis = cpu.as_ref().map_or_else(
        || "cpu: no usage data (no CPU counters with a running time)".to_string(),
        |(_, words)| words.clone(),
    );
    (
        Recommendation {
            memory_request_bytes: memory.map(|(m, _)| m),
            cpu_request_millicores: cpu.map(|(c, _)| c),
            basis: format!("{memory_basis}. {cpu_basis}."),
            memory_basis,
            cpu_basis,
        },
        pool,
    )
}

fn findings(
    attempts: &[Footprint],
    rec: &Recommendation,
    pool: &Pool<'_>,
    headroom_percent: u32,
    many_jobs: bool,
) -> Vec<String> {
    let mut flags = Vec::new();
    for f in attempts {
        let waited = f.waiting_seconds.unwrap_or(0.0);
        let stuck = f
            .waiting_reason
            .as_deref()
            .is_some_and(|r| !is_routine_waiting(r));
        if waited > 0.0 && (stuck || waited >= LONG_WAIT_SECONDS) {
            let reason = f.waiting_reason.as_deref().unwrap_or("Waiting");
            let ran = if f.started.is_some() {
                "before it ran"
            } else {
                "and never ran"
            };
            let held = match f.memory_request_bytes {
                Some(req) if req > 0 => format!(
                    "held its {} memory request for {} while Waiting ({reason}) {ran}: {} reserved for nothing",
                    fmt_bytes(req),
                    fmt_duration(waited),
                    fmt_byte_seconds(req as f64 * waited),
                ),
                _ => format!("spent {} Waiting ({reason}) {ran}", fmt_duration(waited)),
            };
            flags.push(format!("{} {held}", label(f, many_jobs)));
        }
    }
    for f in attempts.iter().filter(|f| f.oom_killed()) {
        let kills = f.oom_kills.filter(|k| *k > 0).map_or(String::new(), |k| {
            format!(" ({k} kill{} in its cgroup)", plural(k as usize))
        });
        let limit = f.memory_limit_bytes.map_or(String::new(), |l| {
            format!(" at its {} memory limit", fmt_bytes(l))
        });
        flags.push(format!(
            "{} was OOM-killed{kills}{limit}: it needs more than its peak{}, so raise the limit; a recommendation from this peak is a lower bound",
            label(f, many_jobs),
            f.memory_peak_bytes.map_or(String::new(), |p| format!(" of {}", fmt_bytes(p))),
        ));
    }
    let ended = attempts
        .iter()
        .filter(|f| outcome(f) == Outcome::Failed)
        .count();
    if ended > 0 && ended == attempts.len() {
        flags.push(format!(
            "no attempt succeeded ({ended} failed{}): the recommendation comes from failed attempts, which may have stopped before reaching their normal peak",
            exit_summary(attempts)
        ));
    }
    let largest = |get: fn(&Footprint) -> Option<u64>| attempts.iter().filter_map(get).max();
    if let (Some(req), Some(rec_mem)) = (
        largest(|f| f.memory_request_bytes),
        rec.memory_request_bytes,
    ) {
        let peak = pool
            .attempts
            .iter()
            .filter_map(|f| f.memory_peak_bytes)
            .max();
        if let Some(peak) = peak.filter(|_| (rec_mem as f64) < OVERPROVISIONED_RATIO * req as f64) {
            flags.push(format!(
                "memory request {} is far above use: the highest peak is {} ({:.0}% of the request); {} would do with {headroom_percent}% headroom",
                fmt_bytes(req),
                fmt_bytes(peak),
                100.0 * peak as f64 / req as f64,
                fmt_bytes(rec_mem),
            ));
        }
    }
    if let (Some(req), Some(rec_cpu)) = (
        largest(|f| f.cpu_request_millicores),
        rec.cpu_request_millicores,
    ) {
        if (rec_cpu as f64) < OVERPROVISIONED_RATIO * req as f64 {
            flags.push(format!(
                "cpu request {req}m is far above use: {rec_cpu}m would do with {headroom_percent}% headroom"
            ));
        }
    }
    let unrequested = attempts
        .iter()
        .any(|f| f.phase.is_some() && f.memory_request_bytes.is_none());
    if unrequested {
        flags.push(match rec.memory_request_bytes {
            Some(m) => format!("no memory request set: the scheduler places these pods as if they needed no memory; {} is suggested", fmt_bytes(m)),
            None => "no memory request set: the scheduler places these pods as if they needed no memory".to_string(),
        });
    }
    let unmeasured: Vec<String> = attempts
        .iter()
        .filter(|f| f.memory_peak_bytes.is_none() && f.used_memory_byte_seconds != Some(0.0))
        .map(|f| label(f, many_jobs))
        .collect();
    if !unmeasured.is_empty() {
        flags.push(format!(
            "no usage data for {}: no cgroup sample was taken (does the agent see the node's cgroup v2 tree at --cgroup-root, and did it run while the pod did?)",
            unmeasured.join(", ")
        ));
    }
    flags
}

/// " : exit code 1 ×6, OOMKilled ×1" — how the failed attempts ended.
fn exit_summary(attempts: &[Footprint]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for f in attempts.iter().filter(|f| outcome(f) == Outcome::Failed) {
        let how = match (f.exit_code, f.reason.as_deref()) {
            (_, Some("OOMKilled")) => "OOMKilled".to_string(),
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(reason)) => reason.to_string(),
            (None, None) => "unknown".to_string(),
        };
        match counts.iter_mut().find(|(h, _)| *h == how) {
            Some((_, n)) => *n += 1,
            None => counts.push((how, 1)),
        }
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(h, n)| format!("{h} ×{n}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

#[cfg(test)]
pub(crate) mod seeds {
    //! The three Jobs of examples/jobs/, replayed through trackers against fake cgroup trees.

    use super::super::testutil::*;
    use super::super::{format_unix, AttemptTracker, Footprint, PodCgroups};
    use std::path::Path;

    pub const EXIT_NONZERO_START: &str = "2026-11-27T14:40:00Z";
    const SUFFIXES: [&str; 6] = ["szsld", "nq9nb", "bg2hf", "9mggl", "lklmw", "txl6b"];

    /// Six attempts of `sleep 30 && exit 1` with a 1 GiB request, the Job controller's back-off
    /// (10 s, doubling) between them, on a systemd-driver node with memory.peak.
    pub fn exit_nonzero(root: &Path) -> Vec<Footprint> {
        let mut created = unix(EXIT_NONZERO_START);
        let mut out = Vec::new();
        for (i, suffix) in SUFFIXES.iter().enumerate() {
            let attempt = i as u32 + 1;
            let (uid, cid) = (pod_uid(attempt), container_id(attempt));
            let name = format!("exit-nonzero-{suffix}");
            let json = job_pod("exit-nonzero", &name, &uid, &format_unix(created), "1Gi");
            let created_text = format_unix(created);
            let (pod_dir, ctr_dir) = pod_cgroup(root, Layout::Systemd("burstable"), &uid, &cid);
            let mut t = AttemptTracker::new(identity("exit-nonzero", attempt, &name, &uid));
            t.observe_pod(
                &waiting(json.clone(), &created_text, "ContainerCreating"),
                created + 0.3,
            );
            let started = created + 1.0;
            t.observe_pod(
                &running(json.clone(), &created_text, &format_unix(started), &cid),
                started + 0.2,
            );
            let mut highest = 0;
            for s in 0..3u64 {
                let memory = 380_000 + u64::from(attempt) * 4096 + s * 20_000;
                highest = highest.max(memory);
                write_usage(&pod_dir, memory, 1_500 * (s + 1), Some(memory), 0);
                write_usage(&ctr_dir, memory - 250_000, 1_400 * (s + 1), None, 0);
                t.sample(&PodCgroups::new(root), started + 1.0 + 10.0 * s as f64);
            }
            let finished = started + 30.0;
            let done = terminated(
                json,
                &created_text,
                &format_unix(started),
                &format_unix(finished),
                1,
                &cid,
            );
            t.observe_pod(&done, finished + 0.5);
            write_usage(&pod_dir, 90_000, 4_700, Some(highest + 8192), 0);
            t.sample(&PodCgroups::new(root), finished + 1.0);
            assert!(t.is_final());
            out.push(t.footprint(finished + 2.0));
            created = finished + 10.0 * f64::from(1u32 << i);
        }
        out
    }

    pub const INVALID_SECRET_START: &str = "2026-11-27T15:10:00Z";

    /// One pod stuck in CreateContainerConfigError for five minutes, holding 1 GiB; its
    /// container never started, so there is no container cgroup to sample.
    pub fn invalid_secret(root: &Path) -> Vec<Footprint> {
        let start = unix(INVALID_SECRET_START);
        let uid = pod_uid(40);
        let name = "invalid-secret-5st25";
        let json = job_pod("invalid-secret", name, &uid, INVALID_SECRET_START, "1Gi");
        let mut t = AttemptTracker::new(identity("invalid-secret", 1, name, &uid));
        for step in 0..10 {
            let now = start + 1.0 + 30.0 * f64::from(step);
            t.observe_pod(
                &waiting(
                    json.clone(),
                    INVALID_SECRET_START,
                    "CreateContainerConfigError",
                ),
                now,
            );
            t.sample(&PodCgroups::new(root), now);
        }
        vec![t.footprint(start + 300.0)]
    }

    pub const OVER_PROVISIONED_START: &str = "2026-11-27T15:20:00Z";

    /// `stress --vm 1 --vm-bytes 1G --vm-hang 0` with a 2 GiB request: it allocates 1 GiB once
    /// and holds it forever (still Running), on a cgroupfs-driver node whose kernel has no
    /// memory.peak.
    pub fn over_provisioned(root: &Path) -> Vec<Footprint> {
        let created = unix(OVER_PROVISIONED_START);
        let uid = pod_uid(60);
        let cid = container_id(60);
        let name = "over-provisioned-x7k2p";
        let json = job_pod(
            "over-provisioned",
            name,
            &uid,
            OVER_PROVISIONED_START,
            "2Gi",
        );
        let (pod_dir, ctr_dir) = pod_cgroup(root, Layout::Cgroupfs("burstable"), &uid, &cid);
        let mut t = AttemptTracker::new(identity("over-provisioned", 1, name, &uid));
        t.observe_pod(
            &waiting(json.clone(), OVER_PROVISIONED_START, "ContainerCreating"),
            created + 0.5,
        );
        let started = created + 2.0;
        let pod = running(json, OVER_PROVISIONED_START, &format_unix(started), &cid);
        t.observe_pod(&pod, started + 0.5);
        for s in 0..40u64 {
            let memory = if s == 0 {
                3 * MIB
            } else {
                GIB + 2 * MIB + (s % 3) * 512 * 1024
            };
            let usage = 900_000 + 2_000 * s;
            write_usage(&pod_dir, memory, usage, None, 0);
            write_usage(&ctr_dir, memory - 600 * 1024, usage - 20_000, None, 0);
            t.sample(&PodCgroups::new(root), started + 1.0 + 15.0 * s as f64);
            t.observe_pod(&pod, started + 2.0 + 15.0 * s as f64);
        }
        vec![t.footprint(created + 602.0)]
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{pod_uid, unix};
    use super::seeds::*;
    use super::*;
    use serde_json::Value;

    fn gib_seconds(v: f64) -> f64 {
        v / GIB as f64
    }

    #[test]
    fn exit_nonzero_reserves_only_while_each_attempt_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let footprints = exit_nonzero(tmp.path());
        for (i, f) in footprints.iter().enumerate() {
            assert_eq!(f.attempt, i as u32 + 1);
            assert_eq!(f.phase.as_deref(), Some("Failed"));
            assert_eq!((f.exit_code, f.reason.as_deref()), (Some(1), Some("Error")));
            assert_eq!(f.reserved_memory_byte_seconds, Some(31.0 * GIB as f64));
            assert_eq!(f.running_seconds(), Some(30.0));
            assert_eq!(f.waiting_seconds, Some(1.0));
            assert_eq!(f.samples.len(), 3);
            assert!(
                f.samples.windows(2).all(|w| w[1].1 > w[0].1),
                "values change between samples"
            );
            assert!(f.is_final);
        }
        // Back-off gaps: each attempt is created 10 s × 2^(n-1) after the previous one failed.
        let gaps: Vec<f64> = footprints
            .windows(2)
            .map(|w| w[1].held_interval().unwrap().0 - w[0].held_interval().unwrap().1)
            .collect();
        assert_eq!(gaps, vec![10.0, 20.0, 40.0, 80.0, 160.0]);

        let report = build_report(footprints.into_iter().rev().collect(), 20);
        let order: Vec<u32> = report.attempts.iter().map(|f| f.attempt).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5, 6]);
        let t = &report.totals;
        assert_eq!(
            (t.attempts, t.succeeded, t.failed, t.unfinished),
            (6, 0, 6, 0)
        );
        let reserved = gib_seconds(t.reserved_memory_byte_seconds.unwrap());
        assert_eq!(reserved, 6.0 * 31.0);
        assert!(
            (reserved - 6.0 * 30.0).abs() / (6.0 * 30.0) < 0.05,
            "≈ 6 × 30 s × 1 GiB"
        );
        assert_eq!(t.held_seconds, 186.0);
        assert_eq!(t.span_seconds, Some(186.0 + 310.0));
        let peak = t.memory_peak_bytes.unwrap();
        assert_eq!(peak, 380_000 + 6 * 4096 + 40_000 + 8192);
        assert!(t.efficiency.unwrap() < 0.001);

        assert_eq!(report.recommendation.memory_request_bytes, Some(64 * MIB));
        assert_eq!(report.recommendation.cpu_request_millicores, Some(10));
        let basis = &report.recommendation.basis;
        assert!(basis.contains("highest peak 442 KiB, in attempt 6 (exit-nonzero-txl6b), + 20% headroom = 531 KiB, rounded up to a multiple of 64 MiB; peaks from all 6 measured attempts, as none succeeded"), "{basis}");

        assert_eq!(report.flags.len(), 2, "{:#?}", report.flags);
        assert!(report.flags[0].starts_with("no attempt succeeded (6 failed: exit code 1 ×6)"));
        assert!(report.flags[1].starts_with("memory request 1 GiB is far above use: the highest peak is 442 KiB (0% of the request); 64 MiB would do"));

        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["job"], "exit-nonzero");
        assert_eq!(json["namespace"], "default");
        assert_eq!(json["job_uid"], "c74a695f-59a4-4bc7-945a-6701f4c5bd60");
        assert_eq!(json["cronjob"], Value::Null);
        assert_eq!(json["attempts"].as_array().unwrap().len(), 6);
        assert_eq!(json["attempts"][5]["pod"], "exit-nonzero-txl6b");
        assert_eq!(
            json["attempts"][0]["reserved_memory_byte_seconds"],
            31.0 * GIB as f64
        );
        assert_eq!(json["recommendation"]["memory_request_bytes"], 64 * MIB);
        assert_eq!(json["recommendation"]["cpu_request_millicores"], 10);
        assert!(json["recommendation"]["basis"].is_string());
        assert_eq!(json["totals"]["failed"], 6);
        assert!(json.get("jobs").is_none());
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);

        let table = report.to_table();
        assert!(table.starts_with("job exit-nonzero  namespace default  job_uid c74a695f"));
        assert_eq!(table.lines().filter(|l| l.contains(" Failed ")).count(), 6);
        assert!(
            table.contains("exit-nonzero-szsld  Failed   1 Error       30s  1s         1 GiB"),
            "{table}"
        );
        assert!(table.contains("0.517 GiB·min"), "{table}");
        assert!(
            table.contains("recommendation: memory request 64 MiB, cpu request 10m (20% headroom)")
        );
    }

    #[test]
    fn invalid_secret_holds_a_gibibyte_for_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let footprints = invalid_secret(tmp.path());
        let f = &footprints[0];
        assert_eq!(f.phase.as_deref(), Some("Pending"));
        assert_eq!(f.reserved_memory_byte_seconds, Some(300.0 * GIB as f64));
        assert_eq!(f.used_memory_byte_seconds, Some(0.0));
        assert_eq!(f.waiting_seconds, Some(300.0));
        assert_eq!(
            f.waiting_reason.as_deref(),
            Some("CreateContainerConfigError")
        );
        assert_eq!((f.memory_peak_bytes, f.started.as_ref()), (None, None));

        let report = build_report(footprints, 20);
        assert_eq!(report.totals.unfinished, 1);
        assert_eq!(report.totals.efficiency, Some(0.0));
        assert_eq!(report.recommendation.memory_request_bytes, None);
        assert_eq!(report.recommendation.cpu_request_millicores, None);
        assert!(report
            .recommendation
            .basis
            .starts_with("memory: no usage data"));
        assert_eq!(
            report.flags,
            vec!["attempt 1 (invalid-secret-5st25) held its 1 GiB memory request for 5m00s while Waiting (CreateContainerConfigError) and never ran: 5 GiB·min reserved for nothing".to_string()]
        );
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            json["attempts"][0]["waiting_reason"],
            "CreateContainerConfigError"
        );
        assert_eq!(json["recommendation"]["memory_request_bytes"], Value::Null);
        let table = report.to_table();
        assert!(
            table.contains("5m00s CreateContainerConfigError"),
            "{table}"
        );
        assert!(table.contains("Pending"), "{table}");
    }

    #[test]
    fn over_provisioned_is_told_to_ask_for_less() {
        let tmp = tempfile::tempdir().unwrap();
        let footprints = over_provisioned(tmp.path());
        let f = &footprints[0];
        assert_eq!(f.phase.as_deref(), Some("Running"));
        assert_eq!(f.memory_request_bytes, Some(2 * GIB));
        assert_eq!(f.memory_peak_bytes, Some(GIB + 3 * MIB));
        assert_eq!(f.memory_peak_source.as_deref(), Some("samples"));
        assert_eq!(f.samples.len(), 40);
        assert_eq!(
            f.reserved_memory_byte_seconds,
            Some(602.0 * 2.0 * GIB as f64)
        );
        let used = f.used_memory_byte_seconds.unwrap();
        assert!(
            used > 570.0 * GIB as f64 && used < 590.0 * GIB as f64,
            "{used}"
        );
        assert!(!f.is_final);

        let report = build_report(footprints, 20);
        // 1 GiB + 3 MiB peak + 20% = 1232.4 MiB, rounded up to 128 MiB: 1.25 GiB.
        assert_eq!(report.recommendation.memory_request_bytes, Some(1280 * MIB));
        assert_eq!(report.recommendation.cpu_request_millicores, Some(10));
        assert!(report
            .recommendation
            .basis
            .contains("peaks from all 1 measured attempt, as none has succeeded yet"));
        assert_eq!(report.flags.len(), 1, "{:#?}", report.flags);
        assert_eq!(
            report.flags[0],
            "memory request 2 GiB is far above use: the highest peak is 1 GiB (50% of the request); 1.25 GiB would do with 20% headroom"
        );
        let efficiency = report.totals.efficiency.unwrap();
        assert!((0.45..0.5).contains(&efficiency), "{efficiency}");
    }

    fn footprint(job: &str, attempt: u32, phase: &str, start: &str, peak: u64) -> Footprint {
        Footprint {
            job: job.into(),
            job_uid: Some(format!("uid-{job}")),
            cronjob: Some("cron-fail".into()),
            namespace: "default".into(),
            attempt,
            pod: format!("{job}-p{attempt}"),
            pod_uid: pod_uid(attempt),
            phase: Some(phase.into()),
            exit_code: Some(if phase == "Succeeded" { 0 } else { 1 }),
            reason: Some(
                if phase == "Succeeded" {
                    "Completed"
                } else {
                    "Error"
                }
                .into(),
            ),
            scheduled: Some(start.into()),
            started: Some(start.into()),
            finished: Some(super::super::format_unix(unix(start) + 100.0)),
            memory_request_bytes: Some(512 * MIB),
            cpu_request_millicores: Some(1000),
            memory_peak_bytes: Some(peak),
            cpu_usage_seconds: Some(50.0),
            reserved_memory_byte_seconds: Some(100.0 * (512 * MIB) as f64),
            used_memory_byte_seconds: Some(100.0 * peak as f64 / 2.0),
            ..Footprint::default()
        }
    }

    #[test]
    fn cronjob_reports_span_jobs_in_time_order() {
        let footprints = vec![
            footprint(
                "cron-fail-29929855",
                1,
                "Failed",
                "2026-11-27T14:55:00Z",
                600 * MIB,
            ),
            footprint(
                "cron-fail-29929854",
                2,
                "Succeeded",
                "2026-11-27T14:54:30Z",
                300 * MIB,
            ),
            footprint(
                "cron-fail-29929854",
                1,
                "Failed",
                "2026-11-27T14:54:00Z",
                200 * MIB,
            ),
        ];
        let report = build_cronjob_report("cron-fail", "default", footprints, 20);
        assert_eq!(report.job, None);
        assert_eq!(report.cronjob.as_deref(), Some("cron-fail"));
        assert_eq!(
            report.jobs,
            vec!["cron-fail-29929854", "cron-fail-29929855"]
        );
        let order: Vec<(&str, u32)> = report
            .attempts
            .iter()
            .map(|f| (f.job.as_str(), f.attempt))
            .collect();
        assert_eq!(
            order,
            vec![
                ("cron-fail-29929854", 1),
                ("cron-fail-29929854", 2),
                ("cron-fail-29929855", 1)
            ]
        );
        // Only the successful attempt counts: 300 MiB + 20% = 360 MiB → 384 MiB.
        assert_eq!(report.recommendation.memory_request_bytes, Some(384 * MIB));
        // 50 CPU-s over 100 s = 500m + 20% = 600m.
        assert_eq!(report.recommendation.cpu_request_millicores, Some(600));
        assert!(report.recommendation.basis.contains("in cron-fail-29929854 attempt 2 (cron-fail-29929854-p2), + 20% headroom = 360 MiB, rounded up to a multiple of 64 MiB; peaks from the 1 successful attempt"));
        assert_eq!(
            report.flags,
            vec!["cpu request 1000m is far above use: 600m would do with 20% headroom".to_string()]
        );
        assert_eq!(report.totals.span_seconds, Some(160.0));
        let table = report.to_table();
        assert!(table.starts_with("cronjob cron-fail (2 jobs)  namespace default"));
        assert!(
            table.contains("\njob                 attempt  pod"),
            "{table}"
        );
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["job"], Value::Null);
        assert_eq!(json["jobs"][1], "cron-fail-29929855");
    }

    #[test]
    fn mixed_runs_and_oom_kills_are_flagged() {
        let mut a = footprint("j", 1, "Failed", "2026-11-27T14:54:00Z", 512 * MIB);
        a.reason = Some("OOMKilled".into());
        a.exit_code = Some(137);
        a.memory_limit_bytes = Some(512 * MIB);
        a.oom_kills = Some(1);
        let mut b = footprint("j", 2, "Failed", "2026-11-27T14:56:00Z", 512 * MIB);
        b.job_uid = Some("uid-other".into());
        b.memory_peak_bytes = None;
        b.cpu_usage_seconds = None;
        b.used_memory_byte_seconds = None;
        let report = build_report(vec![a, b], 20);
        assert_eq!(report.job_uid, None);
        assert_eq!(report.totals.oom_kills, 1);
        let flags = report.flags.join("\n");
        assert!(flags.contains("footprints of 2 different runs of this job name are mixed (job_uid uid-j, uid-other)"), "{flags}");
        assert!(flags.contains("attempt 1 (j-p1) was OOM-killed (1 kill in its cgroup) at its 512 MiB memory limit: it needs more than its peak of 512 MiB"), "{flags}");
        assert!(
            flags.contains("no attempt succeeded (2 failed: OOMKilled ×1, exit code 1 ×1)"),
            "{flags}"
        );
        assert!(
            flags.contains("no usage data for attempt 2 (j-p2)"),
            "{flags}"
        );
        assert!(report.to_table().contains("137 OOMKilled"));
    }

    #[test]
    fn no_memory_request_is_a_finding() {
        let mut a = footprint("j", 1, "Succeeded", "2026-11-27T14:54:00Z", 100 * MIB);
        a.memory_request_bytes = None;
        a.cpu_request_millicores = None;
        let report = build_report(vec![a], 0);
        assert_eq!(report.recommendation.memory_request_bytes, Some(128 * MIB));
        assert_eq!(report.recommendation.cpu_request_millicores, Some(500));
        assert_eq!(report.flags, vec!["no memory request set: the scheduler places these pods as if they needed no memory; 128 MiB is suggested".to_string()]);
    }

    #[test]
    fn recommendations_round_to_steps_people_use() {
        assert_eq!(round_memory(GIB), GIB);
        assert_eq!(round_memory(GIB + 1), GIB + 128 * MIB);
        assert_eq!(round_memory(1), 64 * MIB);
        assert_eq!(round_cpu(1), 10);
        assert_eq!(round_cpu(999), 1000);
        assert_eq!(round_cpu(1001), 1050);
    }
}
