//! `jobarchive demo`: the seed study's three Jobs as a kubelet would leave them in
//! /var/log/pods, archived into a local store, then listed and fetched back.

use super::fetch::{FetchArgs, Format};
use super::ls::LsArgs;
use super::StoreArgs;
use crate::config::{Config, KubeMode};
use crate::error::{CliError, CliResult};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder of the local store the demo archives into
    #[arg(long, default_value = "jobarchive-demo", value_name = "DIR")]
    pub store: PathBuf,
    /// Keep the generated pods tree in this folder (default: a temporary folder, removed after)
    #[arg(long, value_name = "DIR")]
    pub pods_dir: Option<PathBuf>,
}

/// 2026-11-27T14:00:00Z: a fixed start, so the demo archive is the same on every run.
const T0: i64 = 1_795_788_000;
const NS: &str = "default";

pub async fn run(args: DemoArgs) -> CliResult<()> {
    let tmp = tempfile::tempdir()
        .map_err(|e| CliError::usage(format!("cannot create a temporary folder: {e}")))?;
    let pods_dir = args
        .pods_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("pods"));
    let store = std::path::absolute(&args.store)
        .map_err(|e| CliError::usage(format!("bad --store: {e}")))?;
    eprintln!(
        "1/3 writing the pods of the seed study's Jobs (as the kubelet leaves them) into {}",
        pods_dir.display()
    );
    write_seed_pods(&pods_dir).map_err(|e| {
        CliError::usage(format!(
            "cannot write demo pods into {}: {e}",
            pods_dir.display()
        ))
    })?;

    eprintln!(
        "2/3 archiving them: jobarchive agent --drain --kube off --log-dir {} --store {}",
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
    let summary = crate::pipeline::run(
        cfg,
        "demo-node".into(),
        true,
        Arc::default(),
        crate::meta::Sources::default(),
    )
    .await?;
    eprintln!("    {}", summary.line());

    let store_args = StoreArgs {
        store: Some(store.display().to_string()),
        cluster: "default".into(),
        namespace: NS.into(),
    };
    eprintln!(
        "3/3 reading the archive back\n\n$ jobarchive ls --store {}",
        store.display()
    );
    super::ls::run(LsArgs {
        store: store_args.clone(),
        all: Default::default(),
    })
    .await?;
    eprintln!(
        "\n$ jobarchive fetch exit-nonzero --prefix --store {}",
        store.display()
    );
    let fetch = FetchArgs {
        job: "exit-nonzero".into(),
        store: store_args,
        attempt: None,
        container: None,
        job_uid: None,
        timestamps: false,
        prefix: true,
        format: Format::Text,
        since: None,
        until: None,
        follow: false,
    };
    super::fetch::run(fetch).await?;
    eprintln!(
        "\nAll six attempts of exit-nonzero are archived, although a Job's retries are separate pods that vanish with it.\n\
         invalid-secret has no log: its container never started (CreateContainerConfigError).\n\
         The archive is plain files under {}: gzip NDJSON under logs/, per-attempt manifests under manifests/.\n\
         Next: jobarchive fetch over-provisioned --timestamps --store {0}\n      \
         jobarchive fetch exit-nonzero --attempt last --format jsonl --store {0}",
        store.display()
    );
    Ok(())
}

struct DemoPod<'a> {
    job: &'a str,
    suffix: &'a str,
    uid: String,
    start: i64,
    lines: Vec<(i64, &'a str, String)>,
}

/// exit-nonzero: six attempts, each ~30 s then exit 1, with the Job controller's growing back-off;
/// invalid-secret: a pod whose container never started; over-provisioned: stress output.
pub fn write_seed_pods(dir: &Path) -> std::io::Result<()> {
    let mut pods = Vec::new();
    let mut start = T0;
    for (i, suffix) in ["szsld", "nq9nb", "bg2hf", "9mggl", "lklmw", "txl6b"]
        .iter()
        .enumerate()
    {
        let attempt = i + 1;
        let lines = vec![
            (
                0,
                "stdout",
                format!("exit-nonzero: attempt {attempt} starting, pid 1"),
            ),
            (
                1,
                "stdout",
                "loading batch input from /data/input.csv".to_string(),
            ),
            (
                12,
                "stdout",
                format!("processed {} of 5000 rows", 1200 + 100 * attempt),
            ),
            (
                29,
                "stderr",
                "error: upstream returned 503 Service Unavailable".to_string(),
            ),
            (30, "stderr", "exiting with status 1".to_string()),
        ];
        pods.push(DemoPod {
            job: "exit-nonzero",
            suffix,
            uid: demo_uid(attempt as u32),
            start,
            lines,
        });
        start += 30 + (10 << i);
    }
    let stress = vec![
        (
            0,
            "stdout",
            "stress: info: [1] dispatching hogs: 0 cpu, 0 io, 1 vm, 0 hdd".to_string(),
        ),
        (
            1,
            "stdout",
            "stress: dbug: [1] using backoff sleep of 3000us".to_string(),
        ),
        (
            1,
            "stdout",
            "stress: dbug: [7] allocating 1073741824 bytes ...".to_string(),
        ),
        (
            2,
            "stdout",
            "stress: dbug: [7] touching bytes in strides of 4096 bytes ...".to_string(),
        ),
        // A 40 KiB line: the runtime writes it as partial chunks; the archive joins them again.
        (
            3,
            "stdout",
            format!(
                "stress: dbug: [7] page map: {}",
                "0x7f3a2c000000-rw ".repeat(2300)
            ),
        ),
    ];
    pods.push(DemoPod {
        job: "over-provisioned",
        suffix: "k7d2x",
        uid: demo_uid(20),
        start: T0 + 60,
        lines: stress,
    });
    for p in &pods {
        write_pod(dir, p)?;
    }
    // The container never starts, so the kubelet made the pod folder and nothing in it.
    std::fs::create_dir_all(dir.join(format!("{NS}_invalid-secret-5st25_{}", demo_uid(10))))
}

fn demo_uid(n: u32) -> String {
    format!("0b5e7a4c-1d2f-4e3a-9c8b-{n:012}")
}

fn write_pod(dir: &Path, p: &DemoPod<'_>) -> std::io::Result<()> {
    let container = dir
        .join(format!("{NS}_{}-{}_{}", p.job, p.suffix, p.uid))
        .join(p.job);
    std::fs::create_dir_all(&container)?;
    let mut text = String::new();
    for (i, (at, stream, msg)) in p.lines.iter().enumerate() {
        let ts = rfc3339(p.start + at, i as u32 * 1_000_117);
        // containerd splits lines longer than 16 KiB into P chunks ended by an F chunk.
        let chunks: Vec<&str> = msg
            .as_bytes()
            .chunks(16 * 1024)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        for (j, chunk) in chunks.iter().enumerate() {
            let tag = if j + 1 == chunks.len() { "F" } else { "P" };
            let _ = writeln!(text, "{ts} {stream} {tag} {chunk}");
        }
    }
    std::fs::write(container.join("0.log"), text)
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::nanoseconds(nanos as i64);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f).unwrap_or_default()
}
