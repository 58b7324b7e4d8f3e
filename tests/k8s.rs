//! The Kubernetes test API server (k8s_api/server.py) from a Rust test: one server per test on
//! its own port, loaded with a scenario, with its kubeconfig, its `/_test/` controls and the
//! log files of the scenario's pods written the way the kubelet lays them out.

use crate::Node;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct KubeApi {
    child: Child,
    /// Held open: the server exits when it closes (`--exit-on-stdin-eof`), so a test that
    /// panics leaves no server behind.
    _stdin: ChildStdin,
    pub port: u16,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl KubeApi {
    pub fn start(scenario: &str) -> KubeApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s_api/server.py"))
            .args(["--scenario", scenario, "--port", "0", "--exit-on-stdin-eof"])
            .args(["--bookmark-interval", "1"])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 k8s_api/server.py");
        let stdin = child.stdin.take().expect("server stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("server stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("server did not start: {line:?}"));
        KubeApi {
            child,
            _stdin: stdin,
            port,
            kubeconfig,
            _dir: dir,
        }
    }

    /// `jobarchive agent --kube=on` for `node`, pointed at this server and nothing else.
    pub fn agent(&self, node: &Node) -> Command {
        let mut c = node.agent_kube("on");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    /// `jobarchive agent --kube=on` on a node called `node_name`.
    pub fn agent_as(&self, node: &Node, node_name: &str) -> Command {
        let mut c = node.agent_kube_as("on", node_name);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    /// The Events a cluster holds for `scenario`'s objects (k8s_api/events/, made by
    /// make_events.py), as a List the server's /_test/apply takes.
    pub fn events_of(scenario: &str) -> Value {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("k8s_api/events/{scenario}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("events list")
    }

    /// Serves the Events of `scenario` from now on.
    pub fn apply_events(&self, scenario: &str) {
        self.post("/_test/apply", &Self::events_of(scenario));
    }

    pub fn get(&self, path: &str) -> Value {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        self.request("POST", path, Some(body))
    }

    /// The scenario's pods (served ones), as objects.
    pub fn pods(&self) -> Vec<Value> {
        objects(&self.get("/_test/scenario")["objects"], "Pod")
    }

    /// The scenario's `expected` table, by pod name.
    pub fn expected(&self, pod: &str) -> Value {
        self.get("/_test/scenario")["expected"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["pod"] == pod).cloned())
            .unwrap_or_else(|| panic!("no expected entry for {pod}"))
    }

    pub fn requests(&self) -> Vec<Value> {
        self.get("/_test/requests")["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_mode(&self, mode: Value) {
        self.post("/_test/mode", &mode);
    }

    pub fn delete(&self, kind: &str, name: &str) {
        self.post("/_test/delete", &json!({"kind": kind, "name": name}));
    }

    /// Until a watch of the agent is open (changes made before would only show in its list).
    pub fn wait_for_watch(&self) {
        wait_until("an open watch", Duration::from_secs(20), || {
            self.get("/_test/status")["openWatches"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
        });
    }

    /// A minimal HTTP/1.1 exchange: the control endpoints answer with a Content-Length body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to test API");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read answer");
        let (_, payload) = answer.split_once("\r\n\r\n").expect("HTTP answer");
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{method} {path}: {e}: {payload}"))
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn objects(list: &Value, kind: &str) -> Vec<Value> {
    list.as_array()
        .map(|all| all.iter().filter(|o| o["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

/// Write `lines` lines to every container of a pod object, in its kubelet folder.
pub fn write_pod_logs(node: &Node, pod: &Value, lines: usize, tag: &str) {
    let meta = &pod["metadata"];
    let dir = node.pod(
        meta["namespace"].as_str().unwrap(),
        meta["name"].as_str().unwrap(),
        meta["uid"].as_str().unwrap(),
    );
    for c in pod["spec"]["containers"].as_array().unwrap() {
        let container = c["name"].as_str().unwrap();
        let msgs: Vec<String> = (0..lines)
            .map(|i| {
                format!(
                    "{tag} {} {container} line {i}",
                    meta["name"].as_str().unwrap()
                )
            })
            .collect();
        dir.append(container, 0, &msgs);
    }
}

pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
