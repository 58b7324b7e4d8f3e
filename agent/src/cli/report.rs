//! `jobarchive report <job>` and `jobarchive report --cronjob NAME`: the footprints of a job's
//! attempts from the store, side by side, totalled, with a request recommendation, as a table,
//! JSON or CSV, and optionally as an SVG plot of memory over time.

use super::{AllNamespaces, StoreArgs};
use crate::contract::{listing_prefix, scope_prefix, UNKNOWN_UID};
use crate::error::{CliError, CliResult};
use crate::footprint::report::DEFAULT_HEADROOM_PERCENT;
use crate::footprint::{build_cronjob_report, build_report, render_svg, Footprint, Report};
use crate::read;
use crate::store::Store;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Job name
    #[arg(required_unless_present = "cronjob", conflicts_with = "cronjob")]
    pub job: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Every Job of this CronJob (Jobs named <cronjob>-<schedule>, as the CronJob controller names them)
    #[arg(long, value_name = "NAME")]
    pub cronjob: Option<String>,
    /// With --cronjob: its Jobs in every namespace of the cluster
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// This run of the job (default: the most recent; others are listed on stderr)
    #[arg(long, value_name = "UID", conflicts_with = "cronjob")]
    pub job_uid: Option<String>,
    /// table: for people; json: one object (CONTRACT §5); csv: one row per attempt
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also draw memory over time per attempt, with the requests, into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Headroom added to the observed peaks in the recommendation, in percent
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_HEADROOM_PERCENT,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub headroom: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub async fn run(args: ReportArgs) -> CliResult<()> {
    if args.all_namespaces && args.cronjob.is_none() {
        return Err(CliError::usage(
            "-A goes with --cronjob NAME: a job is reported from one namespace (-n NS)",
        ));
    }
    let store = args.store.open().await?;
    let report = match (&args.cronjob, &args.job) {
        (Some(cronjob), _) => cronjob_report(&store, &args, cronjob).await?,
        (None, Some(job)) => job_report(&store, &args, job).await?,
        (None, None) => return Err(CliError::usage("give a job name or --cronjob NAME")),
    };
    print!(
        "{}",
        match args.format {
            Format::Table => report.to_table(),
            Format::Json => report.to_json() + "\n",
            Format::Csv => report.to_csv(),
        }
    );
    if let Some(path) = &args.plot {
        render_svg(&report, path).map_err(|e| CliError::usage(format!("{e:#}")))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}

/// The report of the most recent run of `job` (the demo's closing words come from it).
pub async fn load(store_args: &StoreArgs, job: &str, headroom: u32) -> CliResult<Report> {
    let store = store_args.open().await?;
    let args = ReportArgs {
        job: Some(job.to_string()),
        store: store_args.clone(),
        cronjob: None,
        job_uid: None,
        format: Format::Table,
        plot: None,
        headroom,
        all_namespaces: false,
    };
    job_report(&store, &args, job).await
}

async fn job_report(store: &Store, args: &ReportArgs, job: &str) -> CliResult<Report> {
    let (cluster, ns) = (&args.store.cluster, &args.store.namespace);
    let prefix = listing_prefix("footprints", cluster, ns, Some(job));
    let mut runs = runs(read::footprints(store, &prefix).await?);
    let not_found = |what: String| {
        CliError::not_found(format!(
            "no footprints for job {job}{what} in namespace {ns} (cluster {cluster}) at {} (looked under {prefix})",
            store.describe()
        ))
    };
    let chosen = match &args.job_uid {
        Some(uid) => runs
            .iter()
            .position(|r| &r.job_uid == uid)
            .ok_or_else(|| not_found(format!(" with job_uid {uid}")))?,
        None => runs
            .len()
            .checked_sub(1)
            .ok_or_else(|| not_found(String::new()))?,
    };
    let run = runs.swap_remove(chosen);
    for other in &runs {
        eprintln!(
            "note: another run of job {job}: --job-uid {} ({} attempt{}, last active {})",
            other.job_uid,
            other.attempts.len(),
            if other.attempts.len() == 1 { "" } else { "s" },
            crate::footprint::format_unix(other.last_active),
        );
    }
    Ok(build_report(run.attempts, args.headroom))
}

async fn cronjob_report(store: &Store, args: &ReportArgs, cronjob: &str) -> CliResult<Report> {
    let cluster = &args.store.cluster;
    let all = AllNamespaces {
        all_namespaces: args.all_namespaces,
    };
    let ns = args.store.scope(&all);
    // A string prefix, not a folder: it matches the folders of all the CronJob's Jobs. Across
    // namespaces the cluster's listing, of which only those folders are read.
    let prefix = match ns {
        Some(_) => format!(
            "{}job={cronjob}-",
            scope_prefix("footprints", cluster, ns, None)
        ),
        None => scope_prefix("footprints", cluster, None, None),
    };
    let folder = format!("/job={cronjob}-");
    let attempts: Vec<Footprint> = read::footprints_where(store, &prefix, |k| k.contains(&folder))
        .await?
        .into_iter()
        .filter(|f| f.cronjob.as_deref() == Some(cronjob))
        .collect();
    if attempts.is_empty() {
        return Err(CliError::not_found(format!(
            "no footprints of jobs of cronjob {cronjob} in {} (cluster {cluster}) at {} (looked under {prefix}*)",
            args.store.scope_label(&all),
            store.describe()
        )));
    }
    let mut namespaces: Vec<&str> = attempts.iter().map(|f| f.namespace.as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    Ok(build_cronjob_report(
        cronjob,
        &namespaces.join(","),
        attempts,
        args.headroom,
    ))
}

/// The footprints of one run of a job (one job_uid).
struct Run {
    job_uid: String,
    attempts: Vec<Footprint>,
    /// The latest moment any attempt was known to hold or use anything (unix seconds).
    last_active: f64,
}

/// Footprints grouped by run, least recently active first.
fn runs(footprints: Vec<Footprint>) -> Vec<Run> {
    let mut by_uid: BTreeMap<String, Vec<Footprint>> = BTreeMap::new();
    for f in footprints {
        let uid = f.job_uid.clone().unwrap_or_else(|| UNKNOWN_UID.to_string());
        by_uid.entry(uid).or_default().push(f);
    }
    let mut runs: Vec<Run> = by_uid
        .into_iter()
        .map(|(job_uid, attempts)| Run {
            job_uid,
            last_active: attempts.iter().map(last_active).fold(f64::MIN, f64::max),
            attempts,
        })
        .collect();
    runs.sort_by(|a, b| a.last_active.total_cmp(&b.last_active));
    runs
}

/// When an attempt was last active: the end of its held time, else when its footprint was
/// last written, else when it started.
fn last_active(f: &Footprint) -> f64 {
    let parse = |t: &Option<String>| t.as_deref().and_then(crate::footprint::parse_unix);
    f.held_interval()
        .map(|(_, end)| end)
        .or_else(|| parse(&f.updated))
        .or_else(|| parse(&f.started))
        .unwrap_or(f64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(uid: Option<&str>, attempt: u32, finished: &str) -> Footprint {
        Footprint {
            job: "j".into(),
            job_uid: uid.map(String::from),
            attempt,
            started: Some("2026-11-27T14:00:00Z".into()),
            finished: Some(finished.into()),
            ..Footprint::default()
        }
    }

    #[test]
    fn runs_are_ordered_by_their_latest_activity() {
        let runs = runs(vec![
            footprint(Some("new"), 1, "2026-11-27T16:00:00Z"),
            footprint(Some("old"), 1, "2026-11-27T15:00:00Z"),
            footprint(Some("old"), 2, "2026-11-27T15:30:00Z"),
            footprint(None, 1, "2026-11-27T14:30:00Z"),
        ]);
        let order: Vec<(&str, usize)> = runs
            .iter()
            .map(|r| (r.job_uid.as_str(), r.attempts.len()))
            .collect();
        assert_eq!(order, [("unknown", 1), ("old", 2), ("new", 1)]);
    }
}
