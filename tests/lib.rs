//! End-to-end test harness: the real `jobarchive` binary, a kubelet-style pods tree written the
//! way the kubelet and containerd write it, and a real S3-compatible server (moto, started by
//! tests/run.sh; its address comes in `S3_ENDPOINT`). A test that needs to take the store down
//! owns a moto process of its own (`Moto`).

pub mod k8s;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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
        "{} is missing: run `cargo build --workspace --bins --tests` first (tests/run.sh does)",
        bin.display()
    );
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/src");
    assert!(
        newest_mtime(&src) <= built,
        "{} is older than agent/src: run `cargo build --workspace --bins --tests` first (tests/run.sh does)",
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
    /// The S3 endpoint of a store on a test's own moto (default: `S3_ENDPOINT`).
    pub endpoint: Option<String>,
}

/// A failing test shows the end of its agent's log (the node's folder is deleted with it), and
/// an agent it left running on the node's folders is killed: it would outlive the test.
impl Drop for Node {
    fn drop(&mut self) {
        kill_leftover_agents(self.dir.path());
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.agent_log()) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- last lines of agent.log ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// `jobarchive agent` processes whose command line names `dir` (a test that failed between
/// starting its agent and stopping it leaves one behind).
fn kill_leftover_agents(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let is_agent = cmdline.split('\0').nth(1) == Some("agent");
        if is_agent && cmdline.contains(needle.as_str()) {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

impl Node {
    pub fn local() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("pods")).unwrap();
        let store = dir.path().join("store").display().to_string();
        Node {
            dir,
            store,
            endpoint: None,
        }
    }

    /// A node whose store is a fresh bucket on the test S3 server.
    pub fn s3() -> Node {
        let bucket = new_bucket();
        let mut node = Node::local();
        node.store = format!("s3://{bucket}/archive");
        node
    }

    /// A node whose store is `bucket` on a test's own moto.
    pub fn s3_on(moto: &Moto, bucket: &str) -> Node {
        moto.create_bucket(bucket);
        let mut node = Node::local();
        node.store = format!("s3://{bucket}/archive");
        node.endpoint = Some(moto.endpoint.clone());
        node
    }

    fn s3_env(&self, c: &mut Command) {
        match &self.endpoint {
            Some(ep) => {
                c.env("AWS_ENDPOINT_URL", ep)
                    .env("JOBARCHIVE_S3_PATH_STYLE", "true");
            }
            None => s3_env(c),
        }
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
        self.agent_kube_as(mode, "node-1")
    }

    /// The same, for an agent that calls its node `node_name`.
    pub fn agent_kube_as(&self, mode: &str, node_name: &str) -> Command {
        let mut c = jobarchive();
        c.arg("agent")
            .arg(format!("--kube={mode}"))
            .arg(format!("--node-name={node_name}"))
            .arg("--log-dir")
            .arg(self.log_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--store")
            .arg(&self.store)
            .env("JOBARCHIVE_HTTP_LISTEN", "127.0.0.1:0");
        self.s3_env(&mut c);
        c
    }

    /// A live agent with extra config, serving /metrics on a port of its own (returned), logging
    /// to `agent_log()`; returns once /metrics answers.
    pub fn start_agent(&self, config: &str) -> (Child, u16) {
        let path = self.dir.path().join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent_log())
            .unwrap();
        let child = self
            .agent()
            .arg("--config")
            .arg(&path)
            .arg(format!("--http-listen=127.0.0.1:{port}"))
            // JOBARCHIVE_TEST_LOG=debug gives a failing test's agent log more to tell.
            .env(
                "RUST_LOG",
                std::env::var("JOBARCHIVE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start agent");
        eventually("the agent serves /metrics", || {
            agent_metric(port, "jobarchive_files_open") >= 0.0
        });
        (child, port)
    }

    pub fn agent_log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn drain(&self) -> Output {
        run_expect(self.agent().arg("--drain"), 0)
    }

    /// A reading command (`fetch`, `ls`) against this node's store.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut c = jobarchive();
        c.args(args).arg("--store").arg(&self.store);
        self.s3_env(&mut c);
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

    /// Rotate `N.log` as the kubelet does: rename it `N.log.YYYYMMDD-hhmmss`; the runtime's
    /// next write creates a new `N.log`. Stamps are unique and increasing within a test run.
    pub fn rotate(&self, container: &str, restart: u32) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let secs = now + u64::from(NEXT.fetch_add(1, Ordering::Relaxed));
        let (y, mo, d) = civil_from_days((secs / 86400) as i64);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let from = self.log_path(container, restart);
        let to = from.with_file_name(format!(
            "{restart}.log.{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"
        ));
        std::fs::rename(from, to).unwrap();
    }

    /// One rotation as the kubelet does it: every rotated file of the stream not compressed yet
    /// is gzipped into `….gz` (written to `.tmp`, renamed: a new inode) and removed, then the
    /// live file is renamed (`rotate`).
    pub fn rotate_compressing(&self, container: &str, restart: u32) {
        let dir = self.path.join(container);
        let prefix = format!("{restart}.log.");
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && !name.ends_with(".gz") && !name.ends_with(".tmp") {
                let data = std::fs::read(e.path()).unwrap();
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&data).unwrap();
                let tmp = dir.join(format!("{name}.tmp"));
                std::fs::write(&tmp, gz.finish().unwrap()).unwrap();
                std::fs::rename(&tmp, dir.join(format!("{name}.gz"))).unwrap();
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        self.rotate(container, restart);
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
    create_bucket(&endpoint, &bucket);
    bucket
}

fn create_bucket(endpoint: &str, bucket: &str) {
    s3_at(endpoint, |client| async move {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create test bucket");
    })
}

/// A moto S3 server owned by one test, so the test can take the store down (`stop`) and bring
/// it back on the same address (`start`: empty, as moto keeps objects in memory).
pub struct Moto {
    pub endpoint: String,
    port: u16,
    child: Option<Child>,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
        };
        moto.restart();
        moto
    }

    /// The venv tests/s3-moto.sh installs moto into.
    pub fn venv() -> PathBuf {
        if let Ok(v) = std::env::var("MOTO_VENV") {
            return v.into();
        }
        let cache = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        PathBuf::from(cache).join("ci-moto-5.2.5")
    }

    /// (Re)start on the same port and wait until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(Self::venv().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (tests/s3-moto.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on {}",
                self.endpoint
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let req = "GET /moto-api/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let mut resp = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut resp).is_ok()
            && resp.starts_with("HTTP/1.1 200")
    }

    /// The store goes away at once (kill -9): connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        create_bucket(&self.endpoint, bucket);
    }

    /// Switch moto's authentication on with a new IAM key allowed everything; returns
    /// (access key id, secret access key).
    pub fn enable_auth(&self) -> (String, String) {
        let script = r#"
import json, sys, urllib.request, boto3
ep = sys.argv[1]
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="e2e")
iam.put_user_policy(UserName="e2e", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="e2e")["AccessKey"]
urllib.request.urlopen(urllib.request.Request(ep + "/moto-api/reset-auth", data=b"0",
                       method="POST", headers={"Content-Type": "text/plain"})).read()
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
        let out = Command::new(Self::venv().join("bin/python"))
            .args(["-c", script, &self.endpoint])
            .output()
            .expect("run moto's python");
        assert!(
            out.status.success(),
            "enable moto auth: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut it = text.split_whitespace().map(str::to_string);
        (it.next().unwrap(), it.next().unwrap())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait (bounded) until `cond` holds; the bound is a safety net, not a timing assertion.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Messages `fetch JOB` prints (empty when it finds nothing or the store is down).
pub fn fetched(node: &Node, job: &str) -> Vec<String> {
    let out = node.cli(&["fetch", job]).output().unwrap();
    if out.status.code() != Some(0) {
        return Vec::new();
    }
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Send a signal with kill(1).
pub fn signal(pid: u32, sig: &str) {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
}

/// Does process `pid` hold `path` open? (what /proc/PID/fd shows)
pub fn holds_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
}

/// The agent follows `path` with a descriptor of its own and has `files` log files open in all.
/// `holds_open` alone can be fooled by a passing probe (the agent reads a new file's first line
/// before it follows it); the gauge counts only followed files.
pub fn follows(agent: &Child, port: u16, path: &Path, files: u32) -> bool {
    holds_open(agent.id(), path) && agent_metric(port, "jobarchive_files_open") == f64::from(files)
}

/// GET over plain HTTP/1.1; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

/// The value of an unlabelled series in a /metrics body (-1 when absent).
pub fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// The value of a metric of an agent serving /metrics on `port` (-1 when it does not answer).
pub fn agent_metric(port: u16, name: &str) -> f64 {
    http_get(port, "/metrics").map_or(-1.0, |(_, body)| metric(&body, name))
}

/// A fresh bucket created with S3 Object Lock enabled (and so versioned).
pub fn new_locked_bucket() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let bucket = format!(
        "e2e-locked-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    with_s3(|client| async move {
        client
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .expect("create test bucket with Object Lock");
        bucket
    })
}

/// Run `f` with a client of the test S3 server, on a runtime of its own (tests are sync).
pub fn with_s3<F, Fut, T>(f: F) -> T
where
    F: FnOnce(aws_sdk_s3::Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let endpoint = std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: run the tests with tests/run.sh, which starts the S3 test server",
    );
    s3_at(&endpoint, f)
}

/// Run `f` with an aws-sdk-s3 client of the S3 server at `endpoint`.
fn s3_at<F, Fut, T>(endpoint: &str, f: F) -> T
where
    F: FnOnce(aws_sdk_s3::Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
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
        f(aws_sdk_s3::Client::from_conf(conf)).await
    })
}

/// Direct access to the objects of a node's store, under the keys of CONTRACT §3, for tests
/// that inspect or tamper with the archive behind the agent's back.
impl Node {
    /// A node whose store is `s3://{bucket}/archive`.
    pub fn s3_in(bucket: &str) -> Node {
        let mut node = Node::local();
        node.store = format!("s3://{bucket}/archive");
        node
    }

    /// `agent --drain` with a config file holding `toml` (flags still set dirs and store).
    pub fn drain_with_config(&self, toml: &str) -> Output {
        let path = self.dir.path().join("jobarchive.toml");
        std::fs::write(&path, toml).unwrap();
        run_expect(self.agent().arg("--config").arg(&path).arg("--drain"), 0)
    }

    fn s3_location(&self) -> Option<(String, String)> {
        let rest = self.store.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some((bucket.to_string(), format!("{}/", prefix.trim_matches('/'))))
    }

    /// Every key under `prefix` (relative to the store), sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = match self.s3_location() {
            Some((bucket, root)) => with_s3(|c| async move {
                let mut out = Vec::new();
                let mut pages = c
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(format!("{root}{prefix}"))
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    for o in page.expect("list").contents() {
                        out.push(o.key().unwrap()[root.len()..].to_string());
                    }
                }
                out
            }),
            None => walk(Path::new(&self.store))
                .into_iter()
                .filter(|k| k.starts_with(prefix))
                .collect(),
        };
        keys.sort();
        keys
    }

    pub fn get_object(&self, key: &str) -> Vec<u8> {
        match self.s3_location() {
            Some((bucket, root)) => with_s3(|c| async move {
                let out = c
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{root}{key}"))
                    .send()
                    .await
                    .expect("get object");
                out.body.collect().await.unwrap().to_vec()
            }),
            None => std::fs::read(Path::new(&self.store).join(key)).unwrap(),
        }
    }

    pub fn put_object(&self, key: &str, body: &[u8]) {
        match self.s3_location() {
            Some((bucket, root)) => with_s3(|c| async move {
                c.put_object()
                    .bucket(bucket)
                    .key(format!("{root}{key}"))
                    .body(body.to_vec().into())
                    .send()
                    .await
                    .expect("put object");
            }),
            None => {
                let path = Path::new(&self.store).join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, body).unwrap();
            }
        }
    }

    /// Every record of every log object in the store, read straight from the objects (no
    /// deduplication, unlike `fetch`): what a query over `logs/` sees.
    pub fn stored_records(&self) -> Vec<serde_json::Value> {
        use std::io::Read;
        let mut out = Vec::new();
        for key in self.keys("logs/") {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&self.get_object(&key)[..])
                .read_to_string(&mut text)
                .unwrap();
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
            );
        }
        out
    }

    pub fn delete_object(&self, key: &str) {
        match self.s3_location() {
            Some((bucket, root)) => with_s3(|c| async move {
                c.delete_object()
                    .bucket(bucket)
                    .key(format!("{root}{key}"))
                    .send()
                    .await
                    .expect("delete object");
            }),
            None => std::fs::remove_file(Path::new(&self.store).join(key)).unwrap(),
        }
    }
}

/// Files under `root`, as keys relative to it; like the local store's own listing, without the
/// temporary files of writes in progress (or of a writer killed mid-write).
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// One request seen by a [`CountingProxy`]: method, path (with the query) and body bytes.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body_bytes: u64,
}

impl Seen {
    /// The tree a request's key is in: `logs`, `manifests`, `manifest-parts`, `footprints`...
    /// (the first path segment after the bucket and the store prefix `archive/`).
    pub fn tree(&self) -> &str {
        let path = self.path.split('?').next().unwrap_or("");
        path.split("/archive/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("")
    }
}

/// A counting proxy in front of an S3 server, for tests that assert what the agent costs: every
/// request is forwarded as it is, except that it asks the server to close the connection after
/// the answer, so each connection carries one request and counting needs no HTTP parsing beyond
/// the request head.
pub struct CountingProxy {
    pub endpoint: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl CountingProxy {
    pub fn start(upstream: &str) -> CountingProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log) = (upstream.clone(), log.clone());
                std::thread::spawn(move || proxy_one(client, &upstream, &log));
            }
        });
        CountingProxy { endpoint, seen }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// PUT requests of a tree: (count, body bytes).
    pub fn puts(&self, tree: &str) -> (usize, u64) {
        self.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.tree() == tree)
            .fold((0, 0), |(n, b), r| (n + 1, b + r.body_bytes))
    }
}

fn proxy_one(mut client: std::net::TcpStream, upstream: &str, log: &std::sync::Mutex<Vec<Seen>>) {
    use std::io::{Read, Write};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or("").to_string();
    let mut parts = request.split(' ');
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut body_bytes = 0;
    let mut out = format!("{request}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            body_bytes = value.trim().parse().unwrap_or(0);
        }
        if name.eq_ignore_ascii_case("x-amz-decoded-content-length") {
            body_bytes = value.trim().parse().unwrap_or(body_bytes);
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    log.lock().unwrap().push(Seen {
        method,
        path,
        body_bytes,
    });
    let Ok(mut server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(out.as_bytes()).is_err() {
        return;
    }
    // Both ways at once: a client that sent `Expect: 100-continue` waits for the server.
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
}
