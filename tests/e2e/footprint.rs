//! Footprints end to end: a node's cgroup v2 tree (systemd and cgroupfs drivers) and pods tree
//! for the Jobs of examples/jobs/ → `jobarchive agent --kube off` (drain, and the long-running agent
//! with a short sample interval) → `jobarchive report` as JSON, table, CSV and SVG plot.

use jobarchive_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The six attempts of exit-nonzero as the fake API server's scenario has them: pod suffix,
/// uid, container start and exit (each `sleep 30 && exit 1`, with the Job controller's back-off).
const EXIT_NONZERO: [(&str, &str, &str, &str); 6] = [
    (
        "szsld",
        "85d870a3-6b42-4e1b-9ba2-9ad2c17208a4",
        "14:53:41",
        "14:54:11",
    ),
    (
        "nq9nb",
        "212d3a3b-a29f-4a79-b7dc-8fc64a0b03b2",
        "14:54:23",
        "14:54:53",
    ),
    (
        "bg2hf",
        "f73661be-e7d8-4b0d-b2d4-28ddd891a80d",
        "14:55:15",
        "14:55:45",
    ),
    (
        "9mggl",
        "1e4c5543-7b95-40d6-83a9-e936f15abdd9",
        "14:56:27",
        "14:56:57",
    ),
    (
        "lklmw",
        "12dc1650-8147-4d7a-8757-aa7e93206c46",
        "14:58:19",
        "14:58:49",
    ),
    (
        "txl6b",
        "b02f28bb-2af0-4fcf-9891-d540e7e7cab3",
        "15:01:31",
        "15:02:01",
    ),
];
const OVER_PROVISIONED_UID: &str = "be0b3955-f54b-42f5-b2ad-e9107386d84a";

fn at(clock: &str) -> String {
    format!("2026-11-27T{clock}Z")
}

/// A cgroup v2 hierarchy laid out as the kubelet and containerd lay it out on a node.
struct Cgroups {
    root: PathBuf,
}

impl Cgroups {
    fn new(node: &Node) -> Cgroups {
        let root = node.dir.path().join("cgroup");
        std::fs::create_dir_all(&root).unwrap();
        Cgroups { root }
    }

    /// systemd driver, Burstable QoS: the uid's dashes become underscores in the slice name.
    fn systemd(&self, uid: &str, container_id: &str) -> (PathBuf, PathBuf) {
        let pod = self.root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        ));
        let container = pod.join(format!("cri-containerd-{container_id}.scope"));
        std::fs::create_dir_all(&container).unwrap();
        (pod, container)
    }

    /// cgroupfs driver, Burstable QoS.
    fn cgroupfs(&self, uid: &str, container_id: &str) -> (PathBuf, PathBuf) {
        let pod = self.root.join(format!("kubepods/burstable/pod{uid}"));
        let container = pod.join(container_id);
        std::fs::create_dir_all(&container).unwrap();
        (pod, container)
    }
}

/// The interface files the agent reads, in the kernel's formats; `peak`: None on kernels
/// before 5.19, which have no memory.peak.
fn write_usage(dir: &Path, memory: u64, usage_usec: u64, peak: Option<u64>) {
    std::fs::write(dir.join("memory.current"), format!("{memory}\n")).unwrap();
    std::fs::write(
        dir.join("cpu.stat"),
        format!(
            "usage_usec {usage_usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
            usage_usec * 3 / 4,
            usage_usec / 4
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    )
    .unwrap();
    if let Some(peak) = peak {
        std::fs::write(dir.join("memory.peak"), format!("{peak}\n")).unwrap();
    }
}

fn container_id(n: usize) -> String {
    format!("{n:02x}{}", &"c0ffee".repeat(11)[..62])
}

/// CRI log lines at fixed times.
fn log(pod: &PodLogs, container: &str, lines: &[(&str, &str)]) {
    let text: String = lines
        .iter()
        .map(|(ts, msg)| format!("{ts} stdout F {msg}\n"))
        .collect();
    pod.append_raw(container, 0, text.as_bytes());
}

/// What attempt `i` of exit-nonzero used: memory.peak and CPU microseconds.
fn exit_nonzero_usage(i: usize) -> (u64, u64) {
    (380_000 + 4096 * i as u64, 1_500_000 + 10_000 * i as u64)
}

fn exit_nonzero(node: &Node, cgroups: &Cgroups) {
    for (i, (suffix, uid, start, end)) in EXIT_NONZERO.iter().enumerate() {
        let pod = node.pod("default", &format!("exit-nonzero-{suffix}"), uid);
        log(
            &pod,
            "exit-nonzero",
            &[
                (&at(start), "sleeping 30 s"),
                (&at(end), "exiting with status 1"),
            ],
        );
        let (peak, usec) = exit_nonzero_usage(i);
        let (pod_dir, scope) = cgroups.systemd(uid, &container_id(i));
        write_usage(&pod_dir, peak - 50_000, usec, Some(peak));
        write_usage(&scope, peak - 300_000, usec - 5_000, Some(peak - 250_000));
    }
}

/// `stress --vm 1 --vm-bytes 1G --vm-hang 0` with a 2Gi request, on a cgroupfs node.
fn over_provisioned(node: &Node, cgroups: &Cgroups, memory: u64) -> PathBuf {
    let pod = node.pod("default", "over-provisioned-7k2l6", OVER_PROVISIONED_UID);
    log(
        &pod,
        "over-provisioned",
        &[
            (
                &at("15:06:03"),
                "stress: info: [1] dispatching hogs: 0 cpu, 0 io, 1 vm, 0 hdd",
            ),
            (
                &at("15:06:04"),
                "stress: dbug: [7] allocating 1073741824 bytes ...",
            ),
        ],
    );
    let (pod_dir, scope) = cgroups.cgroupfs(OVER_PROVISIONED_UID, &container_id(60));
    write_usage(&pod_dir, memory, 2_000_000, None);
    write_usage(&scope, memory - MIB, 1_900_000, None);
    pod_dir
}

fn agent(node: &Node, cgroups: &Cgroups) -> Command {
    let mut c = node.agent();
    c.arg("--cgroup-root").arg(&cgroups.root);
    c
}

fn drain(node: &Node, cgroups: &Cgroups) -> std::process::Output {
    run_expect(agent(node, cgroups).arg("--drain"), 0)
}

fn report_json(node: &Node, args: &[&str]) -> Value {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = run_expect(&mut node.cli(&all), 0);
    serde_json::from_slice(&out.stdout).expect("report json")
}

fn u64_at(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v:#}"))
}

#[test]
fn drain_records_every_attempt_and_report_reads_them_back() {
    for node in [Node::local(), Node::s3()] {
        let cgroups = Cgroups::new(&node);
        exit_nonzero(&node, &cgroups);
        over_provisioned(&node, &cgroups, GIB + 2 * MIB);
        let out = drain(&node, &cgroups);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("wrote 7 footprints"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let report = report_json(&node, &["exit-nonzero"]);
        assert_eq!(report["job"], "exit-nonzero");
        assert_eq!(report["job_uid"], Value::Null, "no job uid without the API");
        let attempts = report["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 6);
        for (i, f) in attempts.iter().enumerate() {
            let (peak, usec) = exit_nonzero_usage(i);
            let (suffix, uid, start, end) = EXIT_NONZERO[i];
            assert_eq!(u64_at(f, "attempt"), i as u64 + 1);
            assert_eq!(f["pod"], format!("exit-nonzero-{suffix}"));
            assert_eq!(f["pod_uid"], uid);
            assert_eq!(f["node"], "node-1");
            assert_eq!(u64_at(f, "memory_peak_bytes"), peak, "from memory.peak");
            assert_eq!(f["memory_peak_source"], "memory.peak");
            assert_eq!(f["cpu_usage_seconds"].as_f64(), Some(usec as f64 / 1e6));
            let samples = f["samples"].as_array().unwrap();
            assert_eq!(samples.len(), 1, "a drain takes one sample");
            assert_eq!(samples[0][1].as_u64(), Some(peak - 50_000));
            assert_eq!(samples[0][2].as_f64(), Some(usec as f64 / 1e6));
            // Without the API: no requests, times from the log lines.
            for absent in [
                "memory_request_bytes",
                "cpu_request_millicores",
                "reserved_memory_byte_seconds",
                "phase",
            ] {
                assert_eq!(f[absent], Value::Null, "{absent}");
            }
            assert_eq!(f["started"], at(start));
            assert_eq!(f["finished"], at(end));
            assert_eq!(f["final"], false, "the pod folder is still there");
        }
        let rec = &report["recommendation"];
        assert_eq!(u64_at(rec, "memory_request_bytes"), 64 * MIB);
        let basis = rec["basis"].as_str().unwrap();
        assert!(
            basis.contains("highest peak")
                && basis.contains("in attempt 6 (exit-nonzero-txl6b)")
                && basis.contains("from all 6 measured attempts"),
            "{basis}"
        );

        let over = report_json(&node, &["over-provisioned"]);
        let f = &over["attempts"][0];
        assert_eq!(u64_at(f, "memory_peak_bytes"), GIB + 2 * MIB);
        assert_eq!(
            f["memory_peak_source"], "samples",
            "no memory.peak on this kernel"
        );
        assert_eq!(f["memory_request_bytes"], Value::Null);
        // 1026 MiB + 20 % = 1231.2 MiB, up to a multiple of 128 MiB.
        assert_eq!(
            u64_at(&over["recommendation"], "memory_request_bytes"),
            1280 * MIB
        );
    }
}

#[test]
fn a_second_drain_adds_to_the_documents_of_the_first() {
    let node = Node::local();
    let cgroups = Cgroups::new(&node);
    let pod_dir = over_provisioned(&node, &cgroups, 300 * MIB);
    drain(&node, &cgroups);
    write_usage(&pod_dir, 900 * MIB, 4_000_000, None);
    std::thread::sleep(Duration::from_millis(20));
    drain(&node, &cgroups);
    let f = &report_json(&node, &["over-provisioned"])["attempts"][0];
    let memory: Vec<u64> = f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[1].as_u64().unwrap())
        .collect();
    assert_eq!(memory, [300 * MIB, 900 * MIB]);
    assert_eq!(u64_at(f, "memory_peak_bytes"), 900 * MIB);
    assert_eq!(f["cpu_usage_seconds"].as_f64(), Some(4.0));
}

/// Polls `report --format json` until `ready` holds for the job's first attempt.
fn wait_for(node: &Node, job: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = node
            .cli(&["report", job, "--format", "json"])
            .output()
            .unwrap();
        if out.status.success() {
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            if ready(&report["attempts"][0]) {
                return report;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sampled_memory(f: &Value) -> Vec<u64> {
    f["samples"].as_array().map_or(Vec::new(), |s| {
        s.iter().map(|s| s[1].as_u64().unwrap_or(0)).collect()
    })
}

/// Stops the agent on drop, so a failing test leaves no process behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_running_agent_samples_memory_over_time_and_ends_with_the_pod() {
    let node = Node::local();
    let cgroups = Cgroups::new(&node);
    let config = node.dir.path().join("jobarchive.toml");
    std::fs::write(
        &config,
        "rescan_interval_secs = 1\n[footprint]\nsample_interval_secs = 1\nwrite_interval_secs = 1\n",
    )
    .unwrap();
    let pod_dir = over_provisioned(&node, &cgroups, 100 * MIB);
    let mut agent = Running(
        agent(&node, &cgroups)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    let job = "over-provisioned";
    for mib in [100, 300, 200] {
        write_usage(&pod_dir, mib * MIB, 2_000_000 + mib * 1000, None);
        wait_for(&node, job, &format!("a sample of {mib} MiB"), |f| {
            sampled_memory(f).contains(&(mib * MIB))
        });
    }
    // The kubelet removes the pod's log folder once the pod is deleted: the attempt has ended.
    std::fs::remove_dir_all(node.log_dir().join(format!(
        "default_over-provisioned-7k2l6_{OVER_PROVISIONED_UID}"
    )))
    .unwrap();
    let report = wait_for(&node, job, "the final footprint", |f| f["final"] == true);
    let f = &report["attempts"][0];
    let mut memory = sampled_memory(f);
    memory.dedup();
    let order: Vec<u64> = memory
        .into_iter()
        .filter(|m| [100, 300, 200].map(|x| x * MIB).contains(m))
        .collect();
    assert_eq!(order, [100 * MIB, 300 * MIB, 200 * MIB], "{f:#}");
    assert_eq!(u64_at(f, "memory_peak_bytes"), 300 * MIB);
    assert!(f["deleted"].is_string());
    assert!(f["used_memory_byte_seconds"].as_f64().unwrap() > 0.0);

    let pid = agent.0.id().to_string();
    run_expect(Command::new("kill").args(["-TERM", &pid]), 0);
    let status = agent.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn table_csv_and_plot_formats() {
    let node = Node::local();
    let cgroups = Cgroups::new(&node);
    exit_nonzero(&node, &cgroups);
    drain(&node, &cgroups);

    let table = run_expect(&mut node.cli(&["report", "exit-nonzero"]), 0).stdout;
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.starts_with("job exit-nonzero  namespace default"),
        "{table}"
    );
    assert!(table.contains("exit-nonzero-txl6b"), "{table}");
    assert!(
        table.contains("recommendation: memory request 64 MiB"),
        "{table}"
    );

    let csv = run_expect(
        &mut node.cli(&["report", "exit-nonzero", "--format", "csv"]),
        0,
    )
    .stdout;
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.starts_with("job,job_uid,cronjob,namespace,attempt,"));

    let svg = node.dir.path().join("x.svg");
    let out = run_expect(
        &mut node.cli(&["report", "exit-nonzero", "--plot", svg.to_str().unwrap()]),
        0,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("plot written to"));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.trim_end().ends_with("</svg>"));
    // Well-formed XML, checked by a real parser.
    run_expect(
        Command::new("python3")
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            ])
            .arg(&svg),
        0,
    );
}

#[test]
fn cronjob_report_spans_the_jobs_of_the_cronjob() {
    let node = Node::local();
    let cgroups = Cgroups::new(&node);
    let pods = [
        ("nightly-29929854-x7k2p", "u-n1", "02:54:01"),
        ("nightly-29929855-b4c5d", "u-n2", "02:55:01"),
        // Named like one of its Jobs, but no CronJob's.
        ("nightly-backup-q8w9z", "u-b", "02:56:01"),
    ];
    for (i, (pod, uid, start)) in pods.iter().enumerate() {
        log(&node.pod("batch", pod, uid), "main", &[(&at(start), "run")]);
        let (pod_dir, _) = cgroups.systemd(uid, &container_id(i));
        write_usage(&pod_dir, 10 * MIB, 1_000_000, Some(20 * MIB));
    }
    // The same CronJob name in another namespace: only -A reports it with these.
    let other = node.pod("other", "nightly-29929856-c6d7k", "u-n3");
    log(&other, "main", &[(&at("02:56:01"), "run")]);
    let (pod_dir, _) = cgroups.systemd("u-n3", &container_id(9));
    write_usage(&pod_dir, 10 * MIB, 1_000_000, Some(20 * MIB));
    drain(&node, &cgroups);
    let report = report_json(&node, &["-n", "batch", "--cronjob", "nightly"]);
    assert_eq!(report["cronjob"], "nightly");
    assert_eq!(
        report["jobs"],
        serde_json::json!(["nightly-29929854", "nightly-29929855"])
    );
    assert_eq!(report["attempts"].as_array().unwrap().len(), 2);
    run_expect(
        &mut node.cli(&["report", "-n", "batch", "--cronjob", "weekly"]),
        1,
    );
    let all = report_json(&node, &["--cronjob", "nightly", "-A"]);
    assert_eq!(
        all["jobs"],
        serde_json::json!(["nightly-29929854", "nightly-29929855", "nightly-29929856"])
    );
    assert_eq!(all["namespace"], "batch,other");
    // -A is for --cronjob; a job is read in one namespace.
    run_expect(&mut node.cli(&["report", "nightly-29929854", "-A"]), 2);
}

#[test]
fn missing_job_exits_1_and_bad_usage_exits_2() {
    let node = Node::local();
    let cgroups = Cgroups::new(&node);
    over_provisioned(&node, &cgroups, GIB);
    drain(&node, &cgroups);
    let out = run_expect(&mut node.cli(&["report", "missing-job"]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing-job") && err.contains("footprints/") && err.lines().count() == 1,
        "{err}"
    );
    let out = run_expect(
        &mut node.cli(&["report", "over-provisioned", "--job-uid", "nope"]),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("job_uid nope"));
    run_expect(&mut node.cli(&["report"]), 2);
    run_expect(
        &mut node.cli(&["report", "over-provisioned", "--format", "xml"]),
        2,
    );
    let unwritable = node.dir.path().join("no/such/dir/x.svg");
    run_expect(
        &mut node.cli(&[
            "report",
            "over-provisioned",
            "--plot",
            unwritable.to_str().unwrap(),
        ]),
        2,
    );
}
