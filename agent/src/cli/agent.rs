//! `jobarchive agent`: load the configuration, then run the pipeline until SIGTERM/SIGINT
//! (or, with `--drain`, until everything present has been shipped).

use crate::config::{Config, KubeMode};
use crate::error::{CliError, CliResult};
use crate::meta::kube::{cluster_config, KubeSource};
use crate::pipeline::Sources;
use crate::stop::Stop;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long `--drain` waits for the first list of the node's pods.
const DRAIN_SYNC_WAIT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// TOML configuration file (see config/jobarchive.toml for every key)
    #[arg(long, env = "JOBARCHIVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ship everything present up to EOF, flush, checkpoint and exit (backfills, tests)
    #[arg(long)]
    pub drain: bool,
    /// Store URL: s3://BUCKET/PREFIX or a folder [config: store.url]
    #[arg(long, env = "JOBARCHIVE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Cluster name written into records and keys [config: cluster]
    #[arg(long, env = "JOBARCHIVE_CLUSTER")]
    pub cluster: Option<String>,
    /// Kubelet pod log folder [default: /var/log/pods]
    #[arg(long, env = "JOBARCHIVE_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Checkpoints and pinned metadata [default: /var/lib/jobarchive]
    #[arg(long, env = "JOBARCHIVE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// This node's name (env NODE_NAME also works) [default: host name]
    #[arg(long, env = "JOBARCHIVE_NODE_NAME")]
    pub node_name: Option<String>,
    /// Kubernetes API metadata: auto, on or off [default: auto]
    #[arg(long, env = "JOBARCHIVE_KUBE", value_enum)]
    pub kube: Option<KubeMode>,
    /// Address of /healthz, /readyz and /metrics; empty: none [default: 0.0.0.0:9808]
    #[arg(long, env = "JOBARCHIVE_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// cgroup v2 mount [default: /sys/fs/cgroup]
    #[arg(long, env = "JOBARCHIVE_CGROUP_ROOT", value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
}

impl AgentArgs {
    /// File, then environment and flags on top.
    pub fn config(&self) -> CliResult<Config> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path).map_err(CliError::usage)?,
            None => Config::default(),
        };
        if let Some(v) = &self.store {
            cfg.store.url = v.clone();
        }
        if let Some(v) = &self.cluster {
            cfg.cluster = v.clone();
        }
        if let Some(v) = &self.log_dir {
            cfg.log_dir = v.clone();
        }
        if let Some(v) = &self.state_dir {
            cfg.state_dir = v.clone();
        }
        if let Some(v) = &self.node_name {
            cfg.node_name = v.clone();
        }
        if let Some(v) = self.kube {
            cfg.kube = v;
        }
        if let Some(v) = &self.http_listen {
            cfg.http_listen = v.clone();
        }
        if let Some(v) = &self.cgroup_root {
            cfg.cgroup_root = v.clone();
        }
        if std::env::var("JOBARCHIVE_S3_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1") {
            cfg.store.path_style = true;
        }
        cfg.validate().map_err(CliError::usage)?;
        Ok(cfg)
    }
}

fn node_name(cfg: &Config) -> CliResult<String> {
    let name = if !cfg.node_name.is_empty() {
        cfg.node_name.clone()
    } else if let Ok(n) = std::env::var("NODE_NAME") {
        n
    } else {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if !crate::contract::is_safe_segment(&name) {
        return Err(CliError::usage(format!(
            "node name {name:?} is not valid: set --node-name or NODE_NAME"
        )));
    }
    Ok(name)
}

pub async fn run(args: AgentArgs) -> CliResult<()> {
    let mut cfg = args.config()?;
    let node = node_name(&cfg)?;
    // inotify reports absolute paths; everything else is easier to read in logs too.
    cfg.log_dir = std::fs::canonicalize(&cfg.log_dir).unwrap_or(cfg.log_dir);
    if !cfg.log_dir.is_dir() {
        return Err(CliError::usage(format!(
            "log dir {} does not exist or is not a folder",
            cfg.log_dir.display()
        )));
    }
    let kube = kube_source(&cfg, &node).await?;
    let stop = Arc::new(Stop::default());
    if !args.drain {
        spawn_signal_handler(stop.clone());
    }
    if let (true, Some(src)) = (args.drain, &kube) {
        wait_for_pod_list(src).await;
    }
    let summary = crate::pipeline::run(cfg, node, args.drain, stop, sources(kube)).await?;
    tracing::info!("{}", summary.line());
    if args.drain {
        eprintln!("jobarchive: drain done: {}", summary.line());
    }
    Ok(())
}

fn sources(kube: Option<Arc<KubeSource>>) -> Sources {
    match kube {
        Some(src) => Sources {
            metadata: Some(src.clone()),
            pods: Some(src.clone()),
            records: Some(src),
        },
        None => Sources::default(),
    }
}

/// `auto`: the API when a cluster configuration is found, else log paths (one warning);
/// `on`: no configuration is a usage error; `off`: log paths.
async fn kube_source(cfg: &Config, node: &str) -> CliResult<Option<Arc<KubeSource>>> {
    if cfg.kube == KubeMode::Off {
        return Ok(None);
    }
    match cluster_config()
        .await
        .and_then(|config| KubeSource::start(config, node))
    {
        Ok(src) => {
            tracing::info!(
                node,
                "Kubernetes API metadata on; watching this node's pods"
            );
            Ok(Some(Arc::new(src)))
        }
        Err(e) if cfg.kube == KubeMode::On => Err(CliError::usage(format!("--kube on: {e}"))),
        Err(e) => {
            tracing::warn!("{e}; using metadata from log paths only (no job_uid)");
            Ok(None)
        }
    }
}

/// Drained pods should get API metadata: give the first pod list a bounded time to arrive.
async fn wait_for_pod_list(src: &KubeSource) {
    if !src.wait_synced(DRAIN_SYNC_WAIT).await {
        tracing::warn!(
            waited_secs = DRAIN_SYNC_WAIT.as_secs(),
            "no pod list from the Kubernetes API yet; pods wait up to metadata_wait_secs, then ship with metadata from their log paths"
        );
    }
}

/// First SIGTERM/SIGINT: stop reading, flush every batch, checkpoint, exit. Second: exit now.
fn spawn_signal_handler(stop: Arc<Stop>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        for n in 0.. {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            if n == 0 {
                tracing::info!("stopping: flushing open batches (signal again to exit at once)");
                stop.request();
            } else {
                tracing::warn!("second signal: exiting without flushing");
                std::process::exit(130);
            }
        }
    });
}
