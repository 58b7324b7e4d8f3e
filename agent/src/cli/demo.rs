//! `jobarchive demo`: the three example Jobs of `examples/jobs/`, archived into a local store
//! and read back.
//!
//! The logs are written as a kubelet would leave them in /var/log/pods and shipped by the
//! agent's real pipeline (`--drain`). What a node's agent would see besides the logs (pod
//! objects, Jobs and Events from the Kubernetes API, cgroup v2 readings) is simulated
//! (`demo_cluster`, every object labelled so) over a quarter of an hour of simulated time,
//! and recorded by the agent's real footprint recorder and post-mortem collector, pass by pass.
//! Then `ls`, `fetch`, `describe` and `report` show what the archive answers.

use super::demo_cluster::{DemoCluster, END, NODE, NS, T0};
use super::describe::{DescribeArgs, Format as DescribeFormat};
use super::fetch::{FetchArgs, Format};
use super::ls::LsArgs;
use super::report::{Format as ReportFormat, ReportArgs};
use super::StoreArgs;
use crate::config::{Config, KubeMode};
use crate::error::{CliError, CliResult};
use crate::footprint::recorder::{Recorder, RecorderDeps};
use crate::footprint::report::{fmt_bytes, fmt_duration, DEFAULT_HEADROOM_PERCENT};
use crate::meta::Identities;
use crate::metrics::Metrics;
use crate::pipeline::Sources;
use crate::postmortem::describe::Description;
use crate::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder of the local store the demo archives into
    #[arg(long, default_value = "jobarchive-demo", value_name = "DIR")]
    pub store: PathBuf,
    /// Keep the generated pods tree in this folder (default: a temporary folder, removed after)
    #[arg(long, value_name = "DIR")]
    pub pods_dir: Option<PathBuf>,
    /// Where the `report --plot` SVGs of the three Jobs go
    #[arg(long, default_value = "jobarchive-demo-plots", value_name = "DIR")]
    pub plots: PathBuf,
}

const JOBS: [&str; 3] = ["exit-nonzero", "invalid-secret", "over-provisioned"];

pub async fn run(args: DemoArgs) -> CliResult<()> {
    let tmp = tempfile::tempdir()
        .map_err(|e| CliError::usage(format!("cannot create a temporary folder: {e}")))?;
    let pods_dir = args
        .pods_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("pods"));
    let store = std::path::absolute(&args.store)
        .map_err(|e| CliError::usage(format!("bad --store: {e}")))?;
    let cluster = Arc::new(DemoCluster::seed());
    eprintln!(
        "1/4 writing the pods of the Jobs in examples/jobs/ (their logs, as the kubelet leaves them) into {}",
        pods_dir.display()
    );
    cluster.write_logs(&pods_dir).map_err(|e| {
        CliError::usage(format!(
            "cannot write demo pods into {}: {e}",
            pods_dir.display()
        ))
    })?;

    eprintln!(
        "2/4 recording 15 simulated minutes of the three Jobs with the agent's footprint recorder:\n    \
         pod objects, Jobs, Events and cgroup v2 readings are SIMULATED (labelled jobarchive.demo/simulated)"
    );
    let recorded = record(&cluster, &pods_dir, &store, tmp.path()).await?;
    eprintln!("    {recorded}");

    eprintln!(
        "3/4 archiving the logs: jobarchive agent --drain --log-dir {} --store {}",
        pods_dir.display(),
        store.display()
    );
    let mut cfg = Config {
        kube: KubeMode::Off,
        log_dir: pods_dir.clone(),
        state_dir: tmp.path().join("state"),
        ..Config::default()
    };
    cfg.allowed_roots = vec![pods_dir.clone()];
    cfg.store.url = store.display().to_string();
    // Job, Job uid and attempt from the simulated API, as the agent would have them.
    let sources = Sources {
        metadata: Some(cluster.clone()),
        ..Sources::default()
    };
    let summary = crate::pipeline::run(cfg, NODE.into(), true, Arc::default(), sources).await?;
    eprintln!("    {}", summary.line());

    let store_args = StoreArgs {
        store: Some(store.display().to_string()),
        cluster: "default".into(),
        namespace: NS.into(),
    };
    let at = format!("--store {}", store.display());
    eprintln!("4/4 reading the archive back\n\n$ jobarchive ls {at}");
    super::ls::run(LsArgs {
        store: store_args.clone(),
        all: Default::default(),
    })
    .await?;
    eprintln!("\n$ jobarchive fetch exit-nonzero --prefix {at}");
    super::fetch::run(FetchArgs {
        job: "exit-nonzero".into(),
        store: store_args.clone(),
        attempt: None,
        container: None,
        job_uid: None,
        timestamps: false,
        prefix: true,
        format: Format::Text,
        since: None,
        until: None,
        follow: false,
    })
    .await?;

    let mut described = Vec::new();
    for job in JOBS {
        eprintln!("\n$ jobarchive describe {job} {at}");
        let args = DescribeArgs {
            job: job.into(),
            store: store_args.clone(),
            job_uid: None,
            format: DescribeFormat::Text,
        };
        let d = super::describe::load(&args).await?;
        print!("{}", d.to_text());
        described.push(d);
    }
    std::fs::create_dir_all(&args.plots).map_err(|e| {
        CliError::usage(format!(
            "cannot create the plots folder {}: {e}",
            args.plots.display()
        ))
    })?;
    for job in JOBS {
        let plot = args.plots.join(format!("{job}.svg"));
        eprintln!("\n$ jobarchive report {job} --plot {} {at}", plot.display());
        super::report::run(ReportArgs {
            job: Some(job.into()),
            store: store_args.clone(),
            cronjob: None,
            job_uid: None,
            format: ReportFormat::Table,
            plot: Some(plot),
            all_namespaces: false,
            headroom: DEFAULT_HEADROOM_PERCENT,
        })
        .await?;
    }
    let over =
        super::report::load(&store_args, "over-provisioned", DEFAULT_HEADROOM_PERCENT).await?;
    eprintln!(
        "\nThe three answers, from the archive alone (the Jobs, pods and Events could be gone):\n{}\
         The archive is plain files under {}: logs/, manifests/ and manifest-parts/, footprints/, events/ and jobs/ (docs/audit.md).\n\
         Memory over time per attempt, with the request as a line: {}/{{{}}}.svg",
        answers(&described, &over),
        store.display(),
        args.plots.display(),
        JOBS.join(",")
    );
    Ok(())
}

/// Runs the recorder over the simulated quarter hour, a pass every sample interval, as the
/// agent's recorder task does: the cluster and the cgroup tree move to each pass's time first.
async fn record(
    cluster: &Arc<DemoCluster>,
    pods_dir: &Path,
    store: &Path,
    work: &Path,
) -> CliResult<String> {
    let mut cfg = Config {
        log_dir: pods_dir.to_path_buf(),
        state_dir: work.join("recorder-state"),
        cgroup_root: work.join("cgroup"),
        ..Config::default()
    };
    // A pass every 10 simulated seconds (the agent's default is 5): the same story, half the
    // file writes.
    cfg.footprint.sample_interval_secs = 10;
    let io = |e: std::io::Error| CliError::usage(format!("demo simulation: {e}"));
    std::fs::create_dir_all(&cfg.cgroup_root).map_err(io)?;
    let state = crate::checkpoint::StateDir::open(&cfg.state_dir).map_err(CliError::usage)?;
    let store = Arc::new(Store::open(&store.display().to_string(), false, "").await?);
    let metrics = Arc::new(Metrics::default());
    let deps = RecorderDeps {
        store,
        state,
        identities: Identities::default(),
        metrics: metrics.clone(),
        metadata: Some(cluster.clone()),
        pods: Some(cluster.clone()),
        records: Some(cluster.clone()),
    };
    let mut recorder = Recorder::new(&cfg, NODE, false, deps);
    let step = cfg.footprint.sample_interval_secs.max(1) as i64;
    let mut t = T0;
    while t <= END {
        cluster.set_time(t);
        cluster.remove_deleted_folders(pods_dir).map_err(io)?;
        cluster.write_cgroups(&cfg.cgroup_root).map_err(io)?;
        recorder.pass(t as f64, t == END).await?;
        t += step;
    }
    Ok(format!(
        "{} passes from {} to {}: wrote {} footprints, {} Events objects, {} Job records ({} simulated API requests)",
        (END - T0) / step + 1,
        crate::footprint::format_unix(T0 as f64),
        crate::footprint::format_unix(END as f64),
        metrics.footprints_written.load(Relaxed),
        metrics.events_written.load(Relaxed),
        metrics.job_records_written.load(Relaxed),
        metrics.postmortem_requests.load(Relaxed),
    ))
}

/// The three answers in words, from what `describe` and `report` read back.
fn answers(described: &[Description], over: &crate::footprint::Report) -> String {
    let mut out = String::new();
    if let Some(d) = described.iter().find(|d| d.job == "exit-nonzero") {
        let reason = d
            .condition
            .as_ref()
            .map(|c| format!("{} ({})", c.kind, c.reason.as_deref().unwrap_or("-")))
            .unwrap_or_else(|| "no final condition".into());
        let exits: Vec<String> = d
            .attempts
            .iter()
            .map(|a| a.exit_code.map_or("-".into(), |c| c.to_string()))
            .collect();
        out.push_str(&format!(
            "  1. exit-nonzero stopped retrying: {reason} after {} attempts (exit codes {}; backoffLimit {}).\n",
            d.attempts.len(),
            exits.join(", "),
            d.spec
                .as_ref()
                .and_then(|s| s.backoff_limit)
                .map_or("-".into(), |b| b.to_string()),
        ));
    }
    if let Some(a) = described
        .iter()
        .find(|d| d.job == "invalid-secret")
        .and_then(|d| d.attempts.first())
    {
        out.push_str(&format!(
            "  2. invalid-secret never ran: {} ({}), Waiting {} while holding its {} memory request.\n",
            a.waiting_reason.as_deref().unwrap_or("-"),
            a.waiting_message.as_deref().unwrap_or("-"),
            a.waiting_seconds.map_or("-".into(), fmt_duration),
            a.memory_request_bytes.map_or("-".into(), fmt_bytes),
        ));
    }
    if let Some(f) = over.attempts.first() {
        out.push_str(&format!(
            "  3. over-provisioned requested {} and peaked at {}: {}.\n",
            f.memory_request_bytes.map_or("-".into(), fmt_bytes),
            f.memory_peak_bytes.map_or("-".into(), fmt_bytes),
            over.recommendation.memory_request_bytes.map_or(
                "no recommendation".into(),
                |m| format!(
                    "a request of {} would do ({}% headroom)",
                    fmt_bytes(m),
                    over.headroom_percent
                )
            ),
        ));
    }
    out
}
