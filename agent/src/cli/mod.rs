//! The `jobarchive` command line (CONTRACT §1): one binary, one subcommand per job to do.

pub mod agent;
pub mod demo;
pub mod demo_cluster;
pub mod describe;
pub mod fetch;
pub mod ls;
pub mod report;
pub mod verify;
pub mod window;

use crate::error::{CliError, CliResult};
use crate::store::Store;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "jobarchive",
    version,
    about = "Keeps the logs and resource footprints of Kubernetes Job pods after the pods are gone",
    long_about = "Keeps the logs and resource footprints of Kubernetes Job pods after the pods are gone.\n\n\
    `jobarchive agent` runs on every node (a DaemonSet): it tails /var/log/pods, enriches each line with its job, \
    cronjob and attempt, and ships gzip NDJSON batches to S3 before the kubelet deletes the files. \
    The other commands read the archive back.\n\nTry `jobarchive demo` first: it needs no cluster and no S3."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the node agent: tail, enrich, batch, compress, ship, checkpoint
    Agent(agent::AgentArgs),
    /// Print the archived logs of a job, every attempt in order
    Fetch(fetch::FetchArgs),
    /// List archived jobs
    Ls(ls::LsArgs),
    /// Per-attempt resource footprints of a job (or of a CronJob's jobs), with a request recommendation
    Report(report::ReportArgs),
    /// A Job's post-mortem from the archive alone, like kubectl describe: spec, final condition, attempts, Events
    Describe(describe::DescribeArgs),
    /// Audit the archive: every manifest against the objects it lists, and objects no manifest lists
    Verify(verify::VerifyArgs),
    /// Demonstrate on generated pods of the three Jobs in examples/jobs/, with a local store
    Demo(demo::DemoArgs),
}

/// Where the archive is, for the commands that read it.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// s3://BUCKET/PREFIX, file:///ABS/PATH or a folder
    #[arg(long, env = "JOBARCHIVE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Cluster name used in the keys
    #[arg(long, env = "JOBARCHIVE_CLUSTER", default_value = "default")]
    pub cluster: String,
    /// Namespace of the job(s)
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

impl StoreArgs {
    /// The store, opened for reading: a read command never creates or writes it, and a store
    /// that is not there is an error here (exit 2 for a missing folder, 3 for a bucket that does
    /// not exist or cannot be reached), not an empty archive.
    pub async fn open(&self) -> CliResult<Store> {
        let url = self.store.as_deref().ok_or_else(|| CliError::usage("no store given: pass --store URL or set JOBARCHIVE_STORE (the demo's is ./jobarchive-demo)"))?;
        let path_style =
            std::env::var("JOBARCHIVE_S3_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
        Ok(Store::open_read_only(url, path_style).await?)
    }

    /// The namespace to read, or `None` for every namespace (`-A`).
    pub fn scope(&self, all: &AllNamespaces) -> Option<&str> {
        (!all.all_namespaces).then_some(self.namespace.as_str())
    }

    /// `namespace default` or `all namespaces`, for messages.
    pub fn scope_label(&self, all: &AllNamespaces) -> String {
        match self.scope(all) {
            Some(ns) => format!("namespace {ns}"),
            None => "all namespaces".into(),
        }
    }
}

/// `-A/--all-namespaces`, as in kubectl (CONTRACT §1, v1.1): every namespace of the cluster.
#[derive(Args, Debug, Clone, Default)]
pub struct AllNamespaces {
    /// Every namespace of the cluster (instead of -n)
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

pub async fn run(cli: Cli) -> CliResult<()> {
    match cli.command {
        Command::Agent(a) => agent::run(a).await,
        Command::Fetch(a) => fetch::run(a).await,
        Command::Ls(a) => ls::run(a).await,
        Command::Report(a) => report::run(a).await,
        Command::Describe(a) => describe::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Demo(a) => demo::run(a).await,
    }
}
