//! End-to-end test harness: the real `jobarchive` binary, a kubelet-style pods tree written the
//! way the kubelet and containerd write it, and a real S3-compatible server (moto, started by
//! tests/run.sh; its address comes in `S3_ENDPOINT`).

pub mod k8s;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary under test: built by `cargo build` before the tests (tests/run.sh does it).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("jobarchive");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bins` first (tests/run.sh does)",
        bin.display()
    );
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src");
    assert!(
        newest_mtime(&src) <= built,
        "{} is older than agent/src: run `cargo build --bins` first (tests/run.sh does)",
        bin.display()
    );
    bin
}

fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).unwrap_or(newest)
        };
        newest = newest.max(t);
    }
    newest
}

pub fn jobarchive() -> Command {
    let mut c = Command::new(binary());
    c.env_remove("JOBARCHIVE_STORE").env("RUST_LOG", "warn");
    c
}

/// Run and return the output; panics with stderr when the exit code is not the expected one.
pub fn run_expect(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().expect("spawn jobarchive");
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code of {cmd:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fake node: a /var/log/pods tree, a state dir, and a store (local or S3).
pub struct Node {
    pub dir: tempfile::TempDir,
    pub store: String,
}

impl Node {
    pub fn local() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("pods")).unwrap();
        let store = dir.path().join("store").display().to_string();
        Node { dir, store }
    }

    /// A node whose store is a fresh bucket on the test S3 server.
    pub fn s3() -> Node {
        let bucket = new_bucket();
        let mut node = Node::local();
        node.store = format!("s3://{bucket}/archive");
        node
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("pods")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn pod(&self, ns: &str, pod: &str, uid: &str) -> PodLogs {
        let path = self.log_dir().join(format!("{ns}_{pod}_{uid}"));
        std::fs::create_dir_all(&path).unwrap();
        PodLogs { path }
    }

    /// `jobarchive agent` with this node's dirs and store, path-only metadata.
    pub fn agent(&self) -> Command {
        self.agent_kube("off")
    }

    /// `jobarchive agent --kube=MODE` with this node's dirs and store.
    pub fn agent_kube(&self, mode: &str) -> Command {
        let mut c = jobarchive();
        c.arg("agent")
            .arg(format!("--kube={mode}"))
            .arg("--node-name=node-1")
            .arg("--log-dir")
            .arg(self.log_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--store")
            .arg(&self.store)
            .env("JOBARCHIVE_HTTP_LISTEN", "127.0.0.1:0");
        s3_env(&mut c);
        c
    }

    pub fn drain(&self) -> Output {
        run_expect(self.agent().arg("--drain"), 0)
    }

    /// A reading command (`fetch`, `ls`) against this node's store.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = jobarchive();
        c.args(args).arg("--store").arg(&self.store);
        s3_env(&mut c);
        c
    }

    /// `fetch JOB --format jsonl` parsed into records.
    pub fn fetch_records(&self, job: &str, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["fetch", job, "--format", "jsonl"];
        args.extend_from_slice(extra);
        let out = run_expect(&mut self.cli(&args), 0);
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("jsonl record"))
            .collect()
    }
}

pub fn s3_env(c: &mut Command) {
    if let Ok(ep) = std::env::var("S3_ENDPOINT") {
        c.env("AWS_ENDPOINT_URL", ep)
            .env("JOBARCHIVE_S3_PATH_STYLE", "true");
    }
}

/// A pod folder; writes container log files as containerd does (CRI format).
pub struct PodLogs {
    pub path: PathBuf,
}

impl PodLogs {
    pub fn log_path(&self, container: &str, restart: u32) -> PathBuf {
        let dir = self.path.join(container);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{restart}.log"))
    }

    /// Append full lines; returns the messages written.
    pub fn append(&self, container: &str, restart: u32, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(container, restart))
            .unwrap();
        let mut buf = Vec::new();
        for l in lines {
            writeln!(buf, "{} stdout F {l}", ts_now()).unwrap();
        }
        f.write_all(&buf).unwrap();
    }

    /// Append raw bytes as they are (partial chunks, malformed lines...).
    pub fn append_raw(&self, container: &str, restart: u32, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(container, restart))
            .unwrap();
        f.write_all(data).unwrap();
    }
}

/// An RFC 3339 timestamp with nanoseconds, increasing on every call.
pub fn ts_now() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let days = secs / 86400;
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:09}Z",
        now.subsec_micros() * 1000 + n % 1000
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Messages of `fetch --format jsonl` records, in order.
pub fn messages(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A fresh bucket on the test S3 server (moto keeps state in memory: one bucket per test).
pub fn new_bucket() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let bucket = format!(
        "e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let endpoint = std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: run the tests with tests/run.sh, which starts the S3 test server",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create test bucket");
    });
    bucket
}
