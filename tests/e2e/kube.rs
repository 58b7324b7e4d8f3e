//! Metadata from the Kubernetes API end to end: the test API server (k8s_api/server.py) with a
//! scenario, the scenario's pods' log files on a node, `jobarchive agent --kube=on`, and what
//! `fetch` and the store's keys then say about each pod: job, job_uid, cronjob, attempt,
//! completion index. Also the API going away, pods deleted from it, and the agent's requests.

use jobarchive_e2e::k8s::{objects, wait_until, write_pod_logs, KubeApi};
use jobarchive_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const LINES: usize = 3;

/// Start the API with `scenario`, write every pod's logs, drain with `--kube=on`.
fn drain_scenario(scenario: &str) -> (KubeApi, Node) {
    let api = KubeApi::start(scenario);
    let node = Node::local();
    for pod in api.pods() {
        write_pod_logs(&node, &pod, LINES, "drained");
    }
    run_expect(api.agent(&node).arg("--drain"), 0);
    (api, node)
}

fn name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap()
}

fn containers(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The records `fetch` prints for a job, or none (exit 1).
fn records_now(node: &Node, job: &str) -> Vec<Value> {
    let out = node
        .cli(&["fetch", job, "--format", "jsonl"])
        .output()
        .expect("run fetch");
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("jsonl record"))
        .collect()
}

fn of_pod<'a>(records: &'a [Value], pod: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["pod"] == pod).collect()
}

/// Every record of the pod carries the identity of the scenario's `expected` row.
fn assert_identity(node: &Node, pod: &Value, expected: &Value, cronjob: &Value) {
    let job = expected["job"].as_str().unwrap();
    let records = records_now(node, job);
    let mine = of_pod(&records, name(pod));
    assert_eq!(
        mine.len(),
        LINES * containers(pod).len(),
        "records of {}",
        name(pod)
    );
    for r in mine {
        let got = [
            &r["job"],
            &r["job_uid"],
            &r["cronjob"],
            &r["attempt"],
            &r["completion_index"],
        ];
        let want = [
            &expected["job"],
            &expected["jobUid"],
            cronjob,
            &expected["attempt"],
            &expected["completionIndex"],
        ];
        assert_eq!(
            got,
            want,
            "job, job_uid, cronjob, attempt, index of {}",
            name(pod)
        );
    }
}

/// Keys under the local store's logs/, relative to it.
fn log_keys(node: &Node) -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = std::path::Path::new(&node.store);
    let mut keys = BTreeSet::new();
    walk(&root.join("logs"), root, &mut keys);
    keys
}

fn expected_keys(pod: &Value, expected: &Value) -> BTreeSet<String> {
    containers(pod)
        .iter()
        .map(|c| {
            format!(
                "logs/cluster=default/namespace=default/job={}/job_uid={}/attempt={}/pod={}/container={c}/restart=0/{:020}.ndjson.gz",
                expected["job"].as_str().unwrap(),
                expected["jobUid"].as_str().unwrap(),
                expected["attempt"],
                name(pod),
                0
            )
        })
        .collect()
}

/// With its Job gone, the CronJob is guessed from the names (`<cronjob>-<minutes>`); the
/// scenario's table says what the API alone can tell (nothing).
fn cronjob_of(expected: &Value) -> Value {
    match expected["jobInApi"].as_bool() {
        Some(false) if expected["job"] == "cron-fail-29929854" => json!("cron-fail"),
        _ => expected["cronJob"].clone(),
    }
}

/// Every job pod of the scenario has the expected identity and keys; no other keys exist.
fn assert_scenario(api: &KubeApi, node: &Node) {
    let mut want = BTreeSet::new();
    for pod in api.pods() {
        let expected = api.expected(name(&pod));
        if expected["job"].is_null() {
            continue;
        }
        assert_identity(node, &pod, &expected, &cronjob_of(&expected));
        want.extend(expected_keys(&pod, &expected));
    }
    assert_eq!(log_keys(node), want);
}

#[test]
fn seed_job_pods_are_attempts_1_to_6_in_creation_order() {
    let (api, node) = drain_scenario("seed-exit-nonzero");
    assert_scenario(&api, &node);
    let attempts: Vec<u64> = records_now(&node, "exit-nonzero")
        .iter()
        .map(|r| r["attempt"].as_u64().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn indexed_jobs_number_attempts_per_completion_index() {
    // indexed-pi-2-sbznc is attempt 2 although the first pod of its index is gone from the
    // API: its failure-count annotation says so.
    let (api, node) = drain_scenario("indexed");
    assert_scenario(&api, &node);
}

#[test]
fn cronjob_pods_name_their_cronjob_even_when_their_job_is_gone() {
    let (api, node) = drain_scenario("cronjob");
    assert_scenario(&api, &node);
    let gone = of_pod(
        &records_now(&node, "cron-fail-29929854"),
        "cron-fail-29929854-4mr6g",
    )
    .first()
    .map(|r| r["job_uid"].clone());
    assert_eq!(gone, Some(json!("e4042944-47ff-4b49-8851-90c2592c1ba8")));
}

#[test]
fn a_pod_without_a_job_is_not_archived() {
    let (_api, node) = drain_scenario("bare-pod");
    let out = run_expect(&mut node.cli(&["fetch", "bare-logger"]), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bare-logger"));
    assert!(log_keys(&node).is_empty());
}

#[test]
fn the_agent_only_reads_pods_and_jobs_it_needs() {
    let (api, node) = drain_scenario("all");
    assert_scenario(&api, &node);
    let requests = api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let (verb, resource) = (r["verb"].as_str().unwrap(), r["resource"].as_str().unwrap());
        let query = &r["query"];
        let allowed = match (resource, verb) {
            // The node's pods, cluster-wide, by field selector only.
            ("pods", "list" | "watch") if r["namespace"].is_null() => {
                query["fieldSelector"] == "spec.nodeName=node-1"
            }
            // A Job's pods, in its namespace, by its controller-uid label.
            ("pods", "list") => query["labelSelector"]
                .as_str()
                .is_some_and(|s| s.starts_with("batch.kubernetes.io/controller-uid=")),
            ("pods", "get") | ("jobs", "get") => !r["namespace"].is_null(),
            // The Events of one object (a pod or a Job), in its namespace.
            ("events", "list") => {
                !r["namespace"].is_null()
                    && query["fieldSelector"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("involvedObject.uid="))
            }
            _ => false,
        };
        assert!(allowed, "request beyond least privilege: {r}");
        let gone_job = r["name"] == "cron-fail-29929854" && r["status"] == 404;
        assert!(r["status"] == 200 || gone_job, "{r}");
    }
    // Each Job is read once for its pods' identity, and once more for its post-mortem record
    // when all its pods here have ended (in a drain: every Job with no running or waiting pod);
    // CronJobs never.
    let job_gets: Vec<String> = requests
        .iter()
        .filter(|r| r["resource"] == "jobs")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    let mut per_job = std::collections::BTreeMap::new();
    for name in &job_gets {
        *per_job.entry(name.as_str()).or_insert(0) += 1;
    }
    let still_running = ["invalid-secret", "over-provisioned"];
    for (job, gets) in &per_job {
        let want = if still_running.contains(job) { 1 } else { 2 };
        assert_eq!(*gets, want, "GETs of Job {job}: {job_gets:?}");
    }
    let jobs = objects(&api.get("/_test/scenario")["objects"], "Job").len();
    assert_eq!(per_job.len(), jobs + 1, "{job_gets:?}");
}

/// The long-running agent, stopped with SIGTERM; stderr kept for the test to read.
struct Agent {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Agent {
    fn start(api: &KubeApi, node: &Node) -> Agent {
        let config = node.dir.path().join("agent.toml");
        std::fs::write(
            &config,
            "rescan_interval_secs = 1\nmetadata_wait_secs = 60\n[batch]\nmax_age_secs = 1\n",
        )
        .unwrap();
        let stderr = node.dir.path().join("agent.stderr");
        let child = api
            .agent(node)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&stderr).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .expect("start agent");
        Agent { child, stderr }
    }

    /// SIGTERM: it flushes and exits 0. Returns its stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        run_expect(Command::new("kill").args(["-TERM", &pid]), 0);
        let mut status = None;
        wait_until("the agent to exit", Duration::from_secs(30), || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let log = std::fs::read_to_string(&self.stderr).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "agent exit\n{log}");
        log
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_records(node: &Node, job: &str, pod: &str, n: usize) -> Vec<Value> {
    let mut mine = Vec::new();
    wait_until(
        &format!("{n} records of {pod}"),
        Duration::from_secs(45),
        || {
            mine = of_pod(&records_now(node, job), pod)
                .into_iter()
                .cloned()
                .collect();
            mine.len() >= n
        },
    );
    mine
}

/// The scenario's pod `pod`, made running again in the API: its container has not ended, so
/// its log may still grow (a terminated container's log is complete once read).
fn running(api: &KubeApi, pod: &str) -> Value {
    let mut p = api.pods().into_iter().find(|p| name(p) == pod).unwrap();
    p["status"]["phase"] = json!("Running");
    p["status"]["containerStatuses"][0]["state"] =
        json!({"running": {"startedAt": "2026-11-27T14:53:41Z"}});
    p["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    api.post("/_test/apply", &p);
    p
}

/// A 7th pod of the seed Job, created after the six others, on this node.
fn seventh_pod(api: &KubeApi) -> Value {
    let mut pod = api
        .pods()
        .into_iter()
        .find(|p| name(p) == "exit-nonzero-txl6b")
        .unwrap();
    let meta = &mut pod["metadata"];
    meta["name"] = json!("exit-nonzero-w7k2p");
    meta["uid"] = json!("7e0b2d5c-1111-4c2a-9d7e-0a7d3c9b5e77");
    meta["creationTimestamp"] = json!("2026-11-27T15:06:00Z");
    meta.as_object_mut().unwrap().remove("resourceVersion");
    pod
}

/// Lists of the node's pods the agent made (the first one and one per relist).
fn node_lists(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r["verb"] == "list" && r["namespace"].is_null())
        .count()
}

fn assert_seed_identity(records: &[Value], attempt: u64) {
    for r in records {
        assert_eq!(r["job"], "exit-nonzero", "{r}");
        assert_eq!(r["job_uid"], "c74a695f-59a4-4bc7-945a-6701f4c5bd60", "{r}");
        assert_eq!(r["attempt"], attempt, "{r}");
    }
}

#[test]
fn a_pod_deleted_from_the_api_keeps_its_metadata_while_its_log_grows() {
    let api = KubeApi::start("seed-exit-nonzero");
    let node = Node::local();
    let agent = Agent::start(&api, &node);
    api.wait_for_watch();
    let first = running(&api, "exit-nonzero-szsld");
    write_pod_logs(&node, &first, LINES, "before");
    wait_for_records(&node, "exit-nonzero", name(&first), LINES);
    api.delete("Pod", name(&first));
    write_pod_logs(&node, &first, LINES, "after");
    let records = wait_for_records(&node, "exit-nonzero", name(&first), 2 * LINES);
    assert_seed_identity(&records, 1);

    // The watch expires (410 Gone): the agent relists and watches on.
    api.post("/_test/expire-watches", &json!({}));
    wait_until(
        "a relist of the node's pods",
        Duration::from_secs(20),
        || node_lists(&api) >= 2,
    );
    api.wait_for_watch();

    // A pod the agent saw in its watch, deleted from the API before its log files were read:
    // its metadata is kept, and the deleted first pod still counts for its attempt.
    let seventh = seventh_pod(&api);
    api.post("/_test/apply", &seventh);
    std::thread::sleep(Duration::from_secs(2));
    api.delete("Pod", name(&seventh));
    write_pod_logs(&node, &seventh, LINES, "late");
    let records = wait_for_records(&node, "exit-nonzero", name(&seventh), LINES);
    assert_seed_identity(&records, 7);
    agent.stop();
}

#[test]
fn tailing_goes_on_while_the_api_is_down_and_metadata_is_right_when_it_returns() {
    let api = KubeApi::start("seed-exit-nonzero");
    let node = Node::local();
    let agent = Agent::start(&api, &node);
    api.wait_for_watch();
    let second = running(&api, "exit-nonzero-nq9nb");
    write_pod_logs(&node, &second, LINES, "up");
    wait_for_records(&node, "exit-nonzero", name(&second), LINES);

    api.set_mode(json!({"down": true}));
    write_pod_logs(&node, &second, LINES, "down");
    let records = wait_for_records(&node, "exit-nonzero", name(&second), 2 * LINES);
    assert_seed_identity(&records, 2);
    // A pod created while the API is away waits for its metadata instead of guessing.
    let seventh = seventh_pod(&api);
    api.post("/_test/apply", &seventh);
    write_pod_logs(&node, &seventh, LINES, "while-down");
    std::thread::sleep(Duration::from_secs(3));
    assert!(of_pod(&records_now(&node, "exit-nonzero"), name(&seventh)).is_empty());

    api.set_mode(json!({"down": false}));
    let records = wait_for_records(&node, "exit-nonzero", name(&seventh), LINES);
    assert_seed_identity(&records, 7);
    // The watch comes back by itself (after its backoff, up to 30 s between tries).
    wait_until("the pod watch to recover", Duration::from_secs(60), || {
        std::fs::read_to_string(&agent.stderr).is_ok_and(|log| {
            log.lines()
                .any(|l| l.contains("answering again") && l.contains("pod watch"))
        })
    });
    let log = agent.stop();
    let watch_warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("pod watch"))
        .count();
    assert_eq!(watch_warnings, 1, "one warning per state change:\n{log}");
}

#[test]
fn kube_on_without_cluster_config_exits_2_and_auto_falls_back_to_paths() {
    let node = Node::local();
    node.pod("default", "exit-nonzero-szsld", "uid-1")
        .append("c", 0, &["hello".to_string()]);
    let home = tempfile::tempdir().unwrap();
    let no_cluster = |mode: &str| {
        let mut c = node.agent_kube(mode);
        c.arg("--drain")
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", home.path());
        c
    };
    let out = run_expect(&mut no_cluster("on"), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--kube on") && err.contains("no usable Kubernetes cluster configuration"),
        "{err}"
    );

    let out = run_expect(&mut no_cluster("auto"), 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("log paths"), "{err}");
    let records = node.fetch_records("exit-nonzero", &[]);
    assert_eq!(records[0]["job_uid"], Value::Null);
}

#[test]
fn a_forbidden_api_is_reported_once_and_pods_wait_until_it_answers() {
    let api = KubeApi::start("seed-exit-nonzero");
    api.set_mode(json!({"forbidden": true}));
    let node = Node::local();
    let agent = Agent::start(&api, &node);
    let third = api
        .pods()
        .into_iter()
        .find(|p| name(p) == "exit-nonzero-bg2hf")
        .unwrap();
    write_pod_logs(&node, &third, LINES, "forbidden");
    wait_until("a few refused requests", Duration::from_secs(20), || {
        api.requests().iter().filter(|r| r["status"] == 403).count() >= 3
    });
    assert!(
        records_now(&node, "exit-nonzero").is_empty(),
        "waits for its metadata"
    );

    api.set_mode(json!({"forbidden": false}));
    let records = wait_for_records(&node, "exit-nonzero", name(&third), LINES);
    assert_seed_identity(&records, 3);
    let log = agent.stop();
    let forbidden = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("forbidden (403)"))
        .count();
    assert_eq!(forbidden, 1, "{log}");
}

/// Every attempt of `job` in `verify`'s output: (status, line).
fn verdicts(node: &Node, job: &str) -> Vec<(String, String)> {
    let out = node.cli(&["verify", job]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("verify:"))
        .map(|l| (l.split(' ').next().unwrap().to_string(), l.to_string()))
        .collect()
}

#[test]
fn a_terminated_container_is_complete_while_its_folder_remains() {
    let api = KubeApi::start("seed-exit-nonzero");
    let node = Node::local();
    let agent = Agent::start(&api, &node);
    api.wait_for_watch();
    for pod in api.pods() {
        write_pod_logs(&node, &pod, LINES, "ended");
    }
    // A seventh attempt, still running.
    let mut seventh = seventh_pod(&api);
    seventh["status"]["phase"] = json!("Running");
    seventh["status"]["containerStatuses"][0]["state"] =
        json!({"running": {"startedAt": "2026-11-27T15:06:02Z"}});
    api.post("/_test/apply", &seventh);
    write_pod_logs(&node, &seventh, LINES, "running");
    wait_for_records(&node, "exit-nonzero", name(&seventh), LINES);
    // The six terminated attempts are complete, though every pod folder is still there.
    wait_until("six complete attempts", Duration::from_secs(30), || {
        verdicts(&node, "exit-nonzero")
            .iter()
            .filter(|(s, _)| s == "complete")
            .count()
            == 6
    });
    let running: Vec<_> = verdicts(&node, "exit-nonzero")
        .into_iter()
        .filter(|(s, _)| s != "complete")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(
        running[0].1.contains("attempt=7") && running[0].1.contains("still open"),
        "{running:?}"
    );
    // Its container ends: complete as soon as its last bytes landed, the folder still there.
    write_pod_logs(&node, &seventh, LINES, "last words");
    seventh["status"]["phase"] = json!("Failed");
    seventh["status"]["containerStatuses"][0]["state"] = json!({"terminated": {
        "exitCode": 1, "reason": "Error", "startedAt": "2026-11-27T15:06:02Z",
        "finishedAt": "2026-11-27T15:06:32Z"
    }});
    api.post("/_test/apply", &seventh);
    wait_until("seven complete attempts", Duration::from_secs(30), || {
        verdicts(&node, "exit-nonzero")
            .iter()
            .all(|(s, _)| s == "complete")
    });
    assert_eq!(
        of_pod(&records_now(&node, "exit-nonzero"), name(&seventh)).len(),
        2 * LINES,
        "its last lines landed before it was called complete"
    );
    assert!(node.log_dir().read_dir().unwrap().count() >= 7);
    agent.stop();
}
