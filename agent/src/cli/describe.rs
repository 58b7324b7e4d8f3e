//! `jobarchive describe <job>`: the Job's post-mortem from the bucket alone (CONTRACT §1, v1.1).
//! Reads the Job's record, footprints, manifests and attempts' Events, picks one run (one
//! job_uid: `--job-uid`, or the most recently active), and prints what `postmortem::describe`
//! makes of them, as text or JSON. Read-only.

use super::StoreArgs;
use crate::contract::{listing_prefix, UNKNOWN_UID};
use crate::error::{CliError, CliResult};
use crate::footprint::{parse_unix, Footprint};
use crate::postmortem::describe::{describe, Archived, Description};
use crate::postmortem::record::job_record_key;
use crate::read;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Job name
    pub job: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// This run of the job (default: the most recent; others are listed on stderr)
    #[arg(long, value_name = "UID")]
    pub job_uid: Option<String>,
    /// text: for people, like kubectl describe; json: one object
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn run(args: DescribeArgs) -> CliResult<()> {
    let text = render(&args).await?;
    print!("{text}");
    Ok(())
}

/// The output of `describe` for `args` (the demo prints it too).
pub async fn render(args: &DescribeArgs) -> CliResult<String> {
    let d = load(args).await?;
    Ok(match args.format {
        Format::Text => d.to_text(),
        Format::Json => d.to_json() + "\n",
    })
}

/// The description of the run `args` selects, from the store.
pub async fn load(args: &DescribeArgs) -> CliResult<Description> {
    let store = args.store.open().await?;
    let (cluster, ns, job) = (&args.store.cluster, &args.store.namespace, &args.job);
    let prefix = |tree: &str| listing_prefix(tree, cluster, ns, Some(job));
    let records = read::job_records(&store, cluster, ns, job).await?;
    let footprints = read::footprints(&store, &prefix("footprints")).await?;
    let manifests = read::manifests(&store, cluster, Some(ns), Some(job)).await?;
    let event_uids: Vec<String> = store
        .list(&prefix("events"))
        .await?
        .iter()
        .filter_map(|o| {
            crate::contract::KeyParts::parse(&o.key)
                .get("job_uid")
                .map(String::from)
        })
        .collect();

    // Every run (job_uid) any tree knows, with when it was last active.
    let mut runs: BTreeMap<String, f64> = BTreeMap::new();
    let mut seen = |uid: String, at: f64| {
        let t = runs.entry(uid).or_insert(f64::MIN);
        *t = t.max(at);
    };
    for r in &records {
        let at = [
            r.condition.as_ref().and_then(|c| c.time.as_deref()),
            r.status.as_ref().and_then(|s| s.completion_time.as_deref()),
            r.created.as_deref(),
        ];
        seen(r.job_uid.clone(), latest(at.into_iter().flatten()));
    }
    for f in &footprints {
        seen(uid_of(&f.job_uid), footprint_time(f));
    }
    for m in &manifests {
        let last = m.log_span().map(|(_, last)| last);
        seen(uid_of(&m.pod.job_uid), latest(last.into_iter()));
    }
    for uid in event_uids {
        seen(uid, f64::MIN);
    }
    let looked = format!(
        "looked under {}, {}, {} and {}",
        prefix("jobs"),
        prefix("manifests"),
        prefix("footprints"),
        prefix("events")
    );
    let chosen = match &args.job_uid {
        Some(uid) if runs.contains_key(uid) => uid.clone(),
        Some(uid) => {
            return Err(CliError::not_found(format!(
                "no archived run of job {job} with job_uid {uid} in namespace {ns} (cluster {cluster}) at {} ({looked})",
                store.describe()
            )))
        }
        None => runs
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(uid, _)| uid.clone())
            .ok_or_else(|| {
                CliError::not_found(format!(
                    "no archived run of job {job} in namespace {ns} (cluster {cluster}) at {} ({looked})",
                    store.describe()
                ))
            })?,
    };
    for (uid, at) in &runs {
        if *uid != chosen && args.job_uid.is_none() {
            let when = if *at > f64::MIN {
                format!(", last active {}", crate::footprint::format_unix(*at))
            } else {
                String::new()
            };
            eprintln!("note: another run of job {job}: --job-uid {uid}{when}");
        }
    }
    let events =
        read::attempt_events(&store, &format!("{}job_uid={chosen}/", prefix("events"))).await?;
    let archived = Archived {
        cluster: cluster.clone(),
        namespace: ns.clone(),
        job: job.clone(),
        record_key: job_record_key(cluster, ns, job, &chosen),
        record: records.into_iter().find(|r| r.job_uid == chosen),
        footprints: footprints
            .into_iter()
            .filter(|f| uid_of(&f.job_uid) == chosen)
            .collect(),
        manifests: manifests
            .into_iter()
            .filter(|m| uid_of(&m.pod.job_uid) == chosen)
            .collect(),
        events,
        other_runs: runs.len() > 1,
        job_uid: chosen,
    };
    Ok(describe(archived))
}

fn uid_of(uid: &Option<String>) -> String {
    uid.clone().unwrap_or_else(|| UNKNOWN_UID.to_string())
}

fn latest<'a>(stamps: impl Iterator<Item = &'a str>) -> f64 {
    stamps.filter_map(parse_unix).fold(f64::MIN, f64::max)
}

/// When an attempt was last known to hold or do anything.
fn footprint_time(f: &Footprint) -> f64 {
    let stamps = [
        f.finished.as_deref(),
        f.deleted.as_deref(),
        f.updated.as_deref(),
        f.started.as_deref(),
    ];
    latest(stamps.into_iter().flatten())
}
