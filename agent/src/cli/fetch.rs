//! `jobarchive fetch <job>`: every attempt's logs back from the store, in order, each record once.

use super::StoreArgs;
use crate::contract::{LogKey, RecordRead};
use crate::error::{CliError, CliResult};
use crate::read::{self, Dedup};
use base64::Engine;
use clap::{Args, ValueEnum};
use std::io::Write;

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Job name
    pub job: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this attempt: a number, or `last`
    #[arg(long, value_name = "N|last")]
    pub attempt: Option<String>,
    /// Only this container
    #[arg(long)]
    pub container: Option<String>,
    /// This run of the job (default: the most recent; others are listed on stderr)
    #[arg(long)]
    pub job_uid: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
    /// Prefix each line with [attempt=N pod=P container=C]
    #[arg(long)]
    pub prefix: bool,
    /// text: the messages; jsonl: the archived records as stored
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Jsonl,
}

pub async fn run(args: FetchArgs) -> CliResult<()> {
    let store = args.store.open().await?;
    let (cluster, ns) = (&args.store.cluster, &args.store.namespace);
    let runs = read::job_runs(read::manifests(&store, cluster, ns, Some(&args.job)).await?);
    let run = match &args.job_uid {
        Some(uid) => runs.iter().find(|r| &r.job_uid == uid),
        None => runs.last(),
    };
    let Some(run) = run else {
        let what = args
            .job_uid
            .as_ref()
            .map(|u| format!(" with job_uid {u}"))
            .unwrap_or_default();
        return Err(CliError::not_found(format!(
            "no archived logs for job {}{what} in namespace {ns} (cluster {cluster}) at {}",
            args.job,
            store.describe()
        )));
    };
    for other in runs.iter().filter(|r| r.job_uid != run.job_uid) {
        eprintln!(
            "note: another run of job {}: --job-uid {} ({} .. {})",
            args.job, other.job_uid, other.first_ts, other.last_ts
        );
    }
    let mut keys = read::log_keys(&store, cluster, ns, &args.job, &run.job_uid).await?;
    filter_keys(&mut keys, &args)?;
    if keys.is_empty() {
        return Err(CliError::not_found(format!(
            "no log objects for job {} matching the filters in namespace {ns} at {}",
            args.job,
            store.describe()
        )));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut dedup = Dedup::default();
    let mut bad = 0u64;
    read::for_each_object(&store, &keys, |_key, body| {
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<RecordRead>(line) {
                Ok(r) if dedup.first_time(&r) => write_record(&mut out, &args, &r, line)?,
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        }
        Ok(())
    })
    .await?;
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(CliError::store(format!("writing output: {e}")));
        }
    }
    if bad > 0 {
        eprintln!("warning: {bad} unreadable records skipped");
    }
    Ok(())
}

fn filter_keys(keys: &mut Vec<LogKey>, args: &FetchArgs) -> CliResult<()> {
    if let Some(c) = &args.container {
        keys.retain(|k| &k.container == c);
    }
    match args.attempt.as_deref() {
        None => {}
        Some("last") => {
            let last = keys.iter().map(|k| k.attempt).max().unwrap_or(0);
            keys.retain(|k| k.attempt == last);
        }
        Some(n) => {
            let n: u32 = n.parse().map_err(|_| {
                CliError::usage(format!("--attempt takes a number or `last`, not {n:?}"))
            })?;
            keys.retain(|k| k.attempt == n);
        }
    }
    Ok(())
}

fn write_record(
    out: &mut impl Write,
    args: &FetchArgs,
    r: &RecordRead<'_>,
    raw: &[u8],
) -> std::io::Result<()> {
    if args.format == Format::Jsonl {
        out.write_all(raw)?;
        return out.write_all(b"\n");
    }
    if args.prefix {
        write!(
            out,
            "[attempt={} pod={} container={}] ",
            r.attempt, r.pod, r.container
        )?;
    }
    if args.timestamps {
        write!(out, "{} ", r.ts)?;
    }
    match r
        .message_b64
        .as_deref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    {
        Some(bytes) => out.write_all(&bytes)?,
        None => out.write_all(r.message.as_bytes())?,
    }
    out.write_all(b"\n")
}
