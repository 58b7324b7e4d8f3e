//! Pod status timeline: reads pod objects from the API into what the footprint needs (effective
//! requests and limits, when the pod got its node, started, finished, how it ended) and keeps,
//! across observations, what a single object cannot tell: how long containers sat Waiting, when
//! the pod was deleted, when it was first seen terminated.
//!
//! Timestamps come from the objects themselves where they exist (creationTimestamp, PodScheduled,
//! startedAt, finishedAt), so an agent that starts late or restarts still gets the past right;
//! observation times only fill the gaps the API leaves.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use time::OffsetDateTime;

use super::{ContainerFootprint, Stamp};

/// Waiting reasons every container passes through on its way to running; anything else
/// (CreateContainerConfigError, ImagePullBackOff, CrashLoopBackOff ...) means it is stuck.
const ROUTINE_WAITING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

pub(crate) fn is_routine_waiting(reason: &str) -> bool {
    ROUTINE_WAITING.contains(&reason)
}

/// A Kubernetes quantity as an integer number of `1/scale` units (`scale` 1: bytes, 1000:
/// millicores), rounded up like `resource.Quantity`'s Value and MilliValue. Integer arithmetic
/// only, so "0.7" CPU is 700m and not 700.0000000001. None for anything unparsable or negative.
pub fn parse_quantity(text: &str, scale: u64) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || whole.len() + fraction.len() > 30 {
        return None;
    }
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    let (binary, mut exponent): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        // Scientific notation: "129e6", "1E3" ("E" alone is exa, matched above).
        s if s.starts_with(['e', 'E']) => (0, s[1..].parse().ok()?),
        _ => return None,
    };
    exponent -= i32::try_from(fraction.len()).ok()?;
    let ten = |power: i32| 10u128.checked_pow(power.unsigned_abs());
    let mut numerator = mantissa
        .checked_mul(u128::from(scale))?
        .checked_mul(1u128.checked_shl(binary)?)?;
    let mut denominator = 1u128;
    if exponent >= 0 {
        numerator = numerator.checked_mul(ten(exponent)?)?;
    } else {
        denominator = ten(exponent)?;
    }
    u64::try_from(numerator.div_ceil(denominator)).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Requests,
    Limits,
}

/// A resource as counted in units of `1/scale`.
#[derive(Clone, Copy, Debug)]
struct Resource {
    name: &'static str,
    scale: u64,
}

const MEMORY: Resource = Resource {
    name: "memory",
    scale: 1,
};
const CPU: Resource = Resource {
    name: "cpu",
    scale: 1000,
};

fn declared(res: Option<&ResourceRequirements>, bound: Bound, r: Resource) -> Option<u64> {
    let res = res?;
    let map = match bound {
        Bound::Requests => res.requests.as_ref(),
        Bound::Limits => res.limits.as_ref(),
    }?;
    parse_quantity(&map.get(r.name)?.0, r.scale)
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The pod's effective request or limit as the scheduler and kubelet compute it: the sum over
/// containers, against the largest init container (which runs alone, next to the sidecars started
/// before it), plus the RuntimeClass overhead; pod-level resources, where set, replace the sum.
/// A request is null when no container declares one; a limit when any container lacks one,
/// since the pod's cgroup is then unbounded.
fn effective(spec: &PodSpec, bound: Bound, r: Resource) -> Option<u64> {
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| parse_quantity(&o.get(r.name)?.0, r.scale))
        .unwrap_or(0);
    if let Some(pod_level) = declared(spec.resources.as_ref(), bound, r) {
        return Some(pod_level.saturating_add(overhead));
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let all = || spec.containers.iter().chain(init);
    let amounts: Vec<Option<u64>> = all()
        .map(|c| declared(c.resources.as_ref(), bound, r))
        .collect();
    let missing = match bound {
        Bound::Requests => amounts.iter().all(Option::is_none),
        Bound::Limits => amounts.iter().any(Option::is_none),
    };
    if missing {
        return None;
    }
    let amount = |c: &Container| declared(c.resources.as_ref(), bound, r).unwrap_or(0);
    let mut sum = spec
        .containers
        .iter()
        .map(amount)
        .fold(0u64, u64::saturating_add);
    let mut sidecars = 0u64;
    let mut largest_init = 0u64;
    for c in init {
        if is_sidecar(c) {
            sum = sum.saturating_add(amount(c));
            sidecars = sidecars.saturating_add(amount(c));
            largest_init = largest_init.max(sidecars);
        } else {
            largest_init = largest_init.max(amount(c).saturating_add(sidecars));
        }
    }
    Some(sum.max(largest_init).saturating_add(overhead))
}

fn stamp(t: &Time) -> Option<Stamp> {
    Stamp::from_datetime(OffsetDateTime::from_unix_timestamp_nanos(t.0.as_nanosecond()).ok()?)
}

fn earliest(stamps: impl Iterator<Item = Stamp>) -> Option<Stamp> {
    stamps.min_by(|a, b| a.unix.total_cmp(&b.unix))
}

fn latest(stamps: impl Iterator<Item = Stamp>) -> Option<Stamp> {
    stamps.max_by(|a, b| a.unix.total_cmp(&b.unix))
}

/// `containerd://<id>` → `<id>`, the name of its cgroup scope.
fn runtime_id(id: &str) -> String {
    id.split_once("://").map_or(id, |(_, id)| id).to_string()
}

/// One container's part in the footprint, with every runtime id it had (one per restart) so its
/// cgroup scopes can be found.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ContainerSummary {
    pub doc: ContainerFootprint,
    pub ids: Vec<String>,
}

/// What one pod object says.
#[derive(Clone, Debug, Default, PartialEq)]
struct PodView {
    created: Option<Stamp>,
    scheduled: Option<Stamp>,
    started: Option<Stamp>,
    /// Only for a terminated pod: when its last container finished.
    finished: Option<Stamp>,
    terminal: bool,
    phase: Option<String>,
    reason: Option<String>,
    exit_code: Option<i32>,
    qos_class: Option<String>,
    /// Reasons of the containers Waiting right now.
    waiting: Vec<String>,
    memory_request: Option<u64>,
    memory_limit: Option<u64>,
    cpu_request: Option<u64>,
    cpu_limit: Option<u64>,
    containers: Vec<ContainerSummary>,
}

impl PodView {
    fn of(pod: &Pod) -> Self {
        let default_spec = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let status = pod.status.clone().unwrap_or_default();
        let sidecars: HashSet<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .map(|c| c.name.as_str())
            .collect();
        let init_statuses = status.init_container_statuses.unwrap_or_default();
        let app_statuses = status.container_statuses.unwrap_or_default();
        let statuses: Vec<(&ContainerStatus, bool)> = init_statuses
            .iter()
            .map(|s| (s, true))
            .chain(app_statuses.iter().map(|s| (s, false)))
            .collect();

        let phase = status.phase;
        let ended_phase = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
        // A Job pod (restartPolicy Never) is done once every container has terminated, even
        // before the kubelet has written the phase.
        let all_terminated = spec.restart_policy.as_deref() == Some("Never")
            && !app_statuses.is_empty()
            && app_statuses.len() >= spec.containers.len()
            && app_statuses
                .iter()
                .all(|s| s.state.as_ref().is_some_and(|st| st.terminated.is_some()));
        let terminal = ended_phase || all_terminated;

        let started = earliest(statuses.iter().flat_map(|(s, _)| {
            let state = s.state.as_ref();
            let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
            [
                state.and_then(|st| st.running.as_ref()?.started_at.as_ref()),
                state.and_then(|st| st.terminated.as_ref()?.started_at.as_ref()),
                last.and_then(|t| t.started_at.as_ref()),
            ]
            .into_iter()
            .flatten()
            .filter_map(stamp)
        }));
        let conditions = status.conditions.unwrap_or_default();
        let finished = terminal
            .then(|| {
                latest(statuses.iter().filter_map(|(s, _)| {
                    stamp(
                        s.state
                            .as_ref()?
                            .terminated
                            .as_ref()?
                            .finished_at
                            .as_ref()?,
                    )
                }))
                .or_else(|| {
                    // Ended without a container ever finishing (rejected, evicted early): the
                    // kubelet's last condition change is when it let go.
                    latest(
                        conditions
                            .iter()
                            .filter_map(|c| stamp(c.last_transition_time.as_ref()?)),
                    )
                })
            })
            .flatten();
        let scheduled = conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "True")
            .and_then(|c| stamp(c.last_transition_time.as_ref()?));

        // The container that explains the outcome: an OOM kill first, then a failure, then any.
        // Sidecars are killed at the end by design and never explain it.
        let ended: Vec<_> = statuses
            .iter()
            .filter(|(s, init)| !(*init && sidecars.contains(s.name.as_str())))
            .filter_map(|(s, _)| s.state.as_ref()?.terminated.as_ref())
            .collect();
        let decisive = ended
            .iter()
            .find(|t| t.reason.as_deref() == Some("OOMKilled"))
            .or_else(|| ended.iter().find(|t| t.exit_code != 0))
            .or_else(|| ended.first());

        let waiting = statuses
            .iter()
            .filter_map(|(s, _)| s.state.as_ref()?.waiting.as_ref())
            .map(|w| w.reason.clone().unwrap_or_else(|| "Waiting".to_string()))
            .collect();

        let containers = statuses_by_spec(spec, &statuses);

        Self {
            created: pod.metadata.creation_timestamp.as_ref().and_then(stamp),
            scheduled,
            started,
            finished,
            terminal,
            phase,
            reason: status
                .reason
                .or_else(|| decisive.and_then(|t| t.reason.clone())),
            exit_code: decisive.map(|t| t.exit_code),
            qos_class: status.qos_class,
            waiting,
            memory_request: effective(spec, Bound::Requests, MEMORY),
            memory_limit: effective(spec, Bound::Limits, MEMORY),
            cpu_request: effective(spec, Bound::Requests, CPU),
            cpu_limit: effective(spec, Bound::Limits, CPU),
            containers,
        }
    }
}

/// Containers in spec order (init first), each with its status if the kubelet reported one.
fn statuses_by_spec(
    spec: &PodSpec,
    statuses: &[(&ContainerStatus, bool)],
) -> Vec<ContainerSummary> {
    let init = spec.init_containers.iter().flatten().map(|c| (c, true));
    let app = spec.containers.iter().map(|c| (c, false));
    init.chain(app)
        .map(|(c, is_init)| {
            let status = statuses
                .iter()
                .find(|(s, i)| *i == is_init && s.name == c.name)
                .map(|(s, _)| *s);
            let terminated = status
                .and_then(|s| s.state.as_ref())
                .and_then(|st| st.terminated.as_ref());
            let current = status
                .and_then(|s| s.container_id.as_deref())
                .map(runtime_id);
            let previous = status
                .and_then(|s| {
                    s.last_state
                        .as_ref()?
                        .terminated
                        .as_ref()?
                        .container_id
                        .as_deref()
                })
                .map(runtime_id);
            let res = c.resources.as_ref();
            ContainerSummary {
                doc: ContainerFootprint {
                    name: Some(c.name.clone()),
                    container_id: current.clone(),
                    init: is_init,
                    restarts: status.map_or(0, |s| u32::try_from(s.restart_count).unwrap_or(0)),
                    reason: terminated.and_then(|t| t.reason.clone()),
                    exit_code: terminated.map(|t| t.exit_code),
                    memory_request_bytes: declared(res, Bound::Requests, MEMORY),
                    memory_limit_bytes: declared(res, Bound::Limits, MEMORY),
                    cpu_request_millicores: declared(res, Bound::Requests, CPU),
                    cpu_limit_millicores: declared(res, Bound::Limits, CPU),
                    ..ContainerFootprint::default()
                },
                ids: current.into_iter().chain(previous).collect(),
            }
        })
        .collect()
}

/// Everything the footprint takes from the timeline, as of one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub qos_class: Option<String>,
    pub created: Option<String>,
    pub scheduled: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub deleted: Option<String>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millicores: Option<u64>,
    pub cpu_limit_millicores: Option<u64>,
    pub reserved_memory_byte_seconds: Option<f64>,
    pub waiting_seconds: Option<f64>,
    pub waiting_reason: Option<String>,
    /// The API shows no container ever started: a lack of samples then means no use at all.
    pub known_never_ran: bool,
    pub containers: Vec<ContainerSummary>,
}

/// One pod's history as far as the agent saw it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timeline {
    view: Option<PodView>,
    first_seen: Option<f64>,
    terminal_seen: Option<f64>,
    deleted: Option<f64>,
    /// Waiting reasons in the order they appeared.
    reasons: Vec<String>,
    /// Waiting after a container had run (CrashLoopBackOff), which no object dates: measured
    /// from the first observation showing it to the first not showing it.
    stalled_since: Option<f64>,
    stalled_seconds: f64,
    log_first: Option<Stamp>,
    log_last: Option<Stamp>,
}

impl Timeline {
    pub(crate) fn observe(&mut self, pod: &Pod, now: f64) {
        let view = PodView::of(pod);
        self.first_seen.get_or_insert(now);
        if view.terminal {
            self.terminal_seen.get_or_insert(now);
        }
        for reason in &view.waiting {
            if self.reasons.last() != Some(reason) {
                self.reasons.push(reason.clone());
            }
        }
        let stalled = view.started.is_some()
            && !view.terminal
            && view.waiting.iter().any(|r| !is_routine_waiting(r));
        match (self.stalled_since, stalled) {
            (None, true) => self.stalled_since = Some(now),
            (Some(since), false) => {
                self.stalled_seconds += (now - since).max(0.0);
                self.stalled_since = None;
            }
            _ => {}
        }
        self.view = Some(view);
    }

    pub(crate) fn mark_deleted(&mut self, now: f64) {
        self.deleted.get_or_insert(now);
    }

    pub(crate) fn observe_log_times(&mut self, first: &str, last: &str) {
        if let Some(first) = Stamp::parse(first) {
            if self.log_first.as_ref().is_none_or(|f| first.unix < f.unix) {
                self.log_first = Some(first);
            }
        }
        if let Some(last) = Stamp::parse(last) {
            if self.log_last.as_ref().is_none_or(|l| last.unix > l.unix) {
                self.log_last = Some(last);
            }
        }
    }

    pub(crate) fn terminal(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.terminal)
    }

    pub(crate) fn deleted(&self) -> bool {
        self.deleted.is_some()
    }

    /// When the pod stopped running, if it has.
    fn finished(&self) -> Option<Stamp> {
        let view = self.view.as_ref().filter(|v| v.terminal)?;
        view.finished
            .clone()
            .or_else(|| self.terminal_seen.map(Stamp::from_unix))
    }

    /// When the pod got its requests on the node and when it gave them back (or `now`).
    fn held(&self, now: f64) -> Option<(f64, f64)> {
        let view = self.view.as_ref()?;
        let start = view
            .scheduled
            .as_ref()
            .or(view.created.as_ref())
            .map(|s| s.unix)
            .or(self.first_seen)?;
        let end = [self.finished().map(|f| f.unix), self.deleted]
            .into_iter()
            .flatten()
            .reduce(f64::min)
            .unwrap_or(now);
        Some((start, end.max(start)))
    }

    fn waiting_seconds(&self, now: f64) -> Option<f64> {
        let view = self.view.as_ref()?;
        let (start, end) = self.held(now)?;
        let before_start = view.started.as_ref().map_or(end, |s| s.unix.min(end)) - start;
        let open = self
            .stalled_since
            .map_or(0.0, |since| (end.min(now) - since).max(0.0));
        Some(before_start.max(0.0) + self.stalled_seconds + open)
    }

    pub(crate) fn summary(&self, now: f64) -> Summary {
        let text = |s: Option<&Stamp>| s.map(|s| s.text.clone());
        let deleted = self.deleted.map(|d| Stamp::from_unix(d).text);
        let Some(view) = &self.view else {
            return Summary {
                started: text(self.log_first.as_ref()),
                finished: text(self.log_last.as_ref()),
                deleted,
                ..Summary::default()
            };
        };
        let reserved = self
            .held(now)
            .map(|(start, end)| view.memory_request.unwrap_or(0) as f64 * (end - start));
        let waiting_reason = self
            .reasons
            .iter()
            .rev()
            .find(|r| !is_routine_waiting(r))
            .or(self.reasons.last())
            .cloned();
        Summary {
            phase: view.phase.clone(),
            reason: view.reason.clone(),
            exit_code: view.exit_code,
            qos_class: view.qos_class.clone(),
            created: text(view.created.as_ref()),
            scheduled: text(view.scheduled.as_ref()),
            started: text(view.started.as_ref().or(self.log_first.as_ref())),
            finished: text(self.finished().as_ref()),
            deleted,
            memory_request_bytes: view.memory_request,
            memory_limit_bytes: view.memory_limit,
            cpu_request_millicores: view.cpu_request,
            cpu_limit_millicores: view.cpu_limit,
            reserved_memory_byte_seconds: reserved,
            waiting_seconds: self.waiting_seconds(now),
            waiting_reason,
            known_never_ran: view.started.is_none(),
            containers: view.containers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-11-27T14:53:43Z";

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        let cases: [(&str, u64, Option<u64>); 18] = [
            ("1Gi", 1, Some(GIB)),
            ("512Mi", 1, Some(512 * MIB)),
            ("1.5Gi", 1, Some(1_610_612_736)),
            ("1G", 1, Some(1_000_000_000)),
            ("128974848", 1, Some(128_974_848)),
            ("129e6", 1, Some(129_000_000)),
            ("129E6", 1, Some(129_000_000)),
            ("1E", 1, Some(1_000_000_000_000_000_000)),
            ("100m", 1000, Some(100)),
            ("0.7", 1000, Some(700)),
            ("2", 1000, Some(2000)),
            ("1.0001", 1000, Some(1001)),
            ("250u", 1000, Some(1)),
            ("1k", 1, Some(1000)),
            (" 64Ki ", 1, Some(65_536)),
            ("-1Gi", 1, None),
            ("1Gb", 1, None),
            ("20Ei", 1, None),
        ];
        for (text, scale, want) in cases {
            assert_eq!(parse_quantity(text, scale), want, "{text}");
        }
        assert_eq!(parse_quantity("", 1), None);
        assert_eq!(parse_quantity(".", 1), None);
        assert_eq!(parse_quantity("1e", 1), None);
    }

    fn spec_with(containers: serde_json::Value, init: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": containers, "initContainers": init})).unwrap()
    }

    fn ctr(
        name: &str,
        requests: serde_json::Value,
        limits: serde_json::Value,
    ) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn effective_requests_follow_the_init_and_sidecar_rules() {
        let spec = spec_with(
            json!([
                ctr("a", json!({"memory": "1Gi", "cpu": "500m"}), json!({})),
                ctr("b", json!({"memory": "512Mi"}), json!({}))
            ]),
            json!([ctr(
                "migrate",
                json!({"memory": "2Gi", "cpu": "100m"}),
                json!({})
            )]),
        );
        assert_eq!(effective(&spec, Bound::Requests, MEMORY), Some(2 * GIB));
        assert_eq!(effective(&spec, Bound::Requests, CPU), Some(500));
        assert_eq!(effective(&spec, Bound::Limits, MEMORY), None);

        // A sidecar runs beside the app containers and beside the init containers after it.
        let mut sidecar = ctr("proxy", json!({"memory": "256Mi"}), json!({}));
        sidecar["restartPolicy"] = json!("Always");
        let spec = spec_with(
            json!([ctr("a", json!({"memory": "1Gi"}), json!({}))]),
            json!([
                sidecar,
                ctr("migrate", json!({"memory": "1280Mi"}), json!({}))
            ]),
        );
        assert_eq!(effective(&spec, Bound::Requests, MEMORY), Some(1536 * MIB));

        // Limits only when every container has one; overhead on top.
        let mut spec = spec_with(
            json!([
                ctr(
                    "a",
                    json!({"memory": "1Gi"}),
                    json!({"memory": "2Gi", "cpu": "1"})
                ),
                ctr("b", json!({}), json!({"memory": "1Gi", "cpu": "1500m"}))
            ]),
            json!([]),
        );
        spec.overhead = serde_json::from_value(json!({"memory": "64Mi", "cpu": "10m"})).unwrap();
        assert_eq!(
            effective(&spec, Bound::Limits, MEMORY),
            Some(3 * GIB + 64 * MIB)
        );
        assert_eq!(effective(&spec, Bound::Limits, CPU), Some(2510));
        assert_eq!(
            effective(&spec, Bound::Requests, MEMORY),
            Some(GIB + 64 * MIB)
        );
        assert_eq!(effective(&spec, Bound::Requests, CPU), None);

        // Pod-level resources replace the container sum.
        spec.resources = serde_json::from_value(json!({"requests": {"memory": "4Gi"}})).unwrap();
        assert_eq!(
            effective(&spec, Bound::Requests, MEMORY),
            Some(4 * GIB + 64 * MIB)
        );
    }

    #[test]
    fn reads_the_captured_pods() {
        // A pod list recorded from a real API server (tests/fixtures/k8s/README.md).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/k8s/podlist-node-1-final.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/fixtures/k8s in the repository");
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pods: Vec<Pod> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| pod(p.clone()))
            .collect();
        let by_name = |name: &str| {
            let p = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .unwrap();
            PodView::of(p)
        };
        let v = by_name("exit-nonzero-94945");
        assert!(v.terminal);
        assert_eq!(v.phase.as_deref(), Some("Failed"));
        assert_eq!((v.exit_code, v.reason.as_deref()), (Some(1), Some("Error")));
        assert_eq!(v.memory_request, Some(GIB));
        assert_eq!(v.scheduled.unwrap().text, "2026-11-27T14:53:43Z");
        assert_eq!(v.started.unwrap().text, "2026-11-27T14:53:45Z");
        assert_eq!(v.finished.unwrap().text, "2026-11-27T14:53:47Z");
        assert_eq!(v.qos_class.as_deref(), Some("Burstable"));
        assert_eq!(
            v.containers[0].ids,
            vec!["bd23bd969b686da3f169dd88fd2b57114d987b92bf2e5c1d64407bc8f7dc8832".to_string()]
        );
        let v = by_name("bare-logger-7x2kq");
        assert_eq!(
            (v.exit_code, v.reason.as_deref()),
            (Some(0), Some("Completed"))
        );
        assert_eq!(v.memory_request, None);
        // Two containers, one failed: the failure explains the pod.
        let v = by_name("indexed-1-pwkgk");
        assert_eq!(v.phase.as_deref(), Some("Failed"));
        assert_ne!(v.exit_code, Some(0));
        assert_eq!(v.containers.len(), 2);
    }

    #[test]
    fn oom_kill_explains_the_pod_even_when_another_container_failed_first() {
        let mut p = job_pod("j", "j-x", &pod_uid(1), T0, "1Gi");
        p["status"] = json!({
            "phase": "Failed",
            "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": at(T0, 5.0)}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": at(T0, 9.0)}}}
            ]
        });
        let v = PodView::of(&pod(p));
        assert_eq!(
            (v.exit_code, v.reason.as_deref()),
            (Some(137), Some("OOMKilled"))
        );
        assert_eq!(v.finished.unwrap().text, at(T0, 9.0));
        // No PodScheduled condition: the hold starts at creation.
        assert_eq!(v.scheduled, None);
    }

    #[test]
    fn evicted_pods_take_the_pod_reason_and_end_at_the_last_condition() {
        let mut p = job_pod("j", "j-x", &pod_uid(1), T0, "1Gi");
        p["status"] = json!({
            "phase": "Failed", "reason": "Evicted",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
                           {"type": "Ready", "status": "False", "lastTransitionTime": at(T0, 70.0)}]
        });
        let mut t = Timeline::default();
        t.observe(&pod(p), unix(T0) + 500.0);
        let s = t.summary(unix(T0) + 600.0);
        assert_eq!(s.reason.as_deref(), Some("Evicted"));
        assert_eq!(s.finished, Some(at(T0, 70.0)));
        assert_eq!(s.reserved_memory_byte_seconds, Some(70.0 * GIB as f64));
        assert!(s.known_never_ran);
    }

    #[test]
    fn a_terminal_pod_without_any_date_ends_when_first_seen_so() {
        let mut p = job_pod("j", "j-x", &pod_uid(1), T0, "1Gi");
        p["status"] = json!({"phase": "Failed"});
        let mut t = Timeline::default();
        t.observe(&pod(p.clone()), unix(T0) + 20.0);
        t.observe(&pod(p), unix(T0) + 40.0);
        let s = t.summary(unix(T0) + 60.0);
        assert_eq!(s.finished, Some(at(T0, 20.0)));
        assert_eq!(s.reserved_memory_byte_seconds, Some(20.0 * GIB as f64));
    }

    #[test]
    fn crash_loops_add_their_waiting_across_observations() {
        let uid = pod_uid(1);
        let mut p = job_pod("j", "j-x", &uid, T0, "256Mi");
        p["spec"]["restartPolicy"] = json!("OnFailure");
        let status = |state: serde_json::Value, restarts: u32| {
            json!({
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}],
                "containerStatuses": [{"name": "j", "ready": false, "restartCount": restarts,
                    "image": "busybox", "imageID": "", "state": state,
                    "containerID": format!("containerd://{}", container_id(restarts)),
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": at(T0, 2.0), "finishedAt": at(T0, 10.0),
                        "containerID": format!("containerd://{}", container_id(9))}}}]
            })
        };
        let mut t = Timeline::default();
        p["status"] = status(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 1);
        t.observe(&pod(p.clone()), unix(T0) + 12.0);
        t.observe(&pod(p.clone()), unix(T0) + 20.0);
        assert_eq!(t.summary(unix(T0) + 25.0).waiting_seconds, Some(2.0 + 13.0));
        p["status"] = status(json!({"running": {"startedAt": at(T0, 30.0)}}), 1);
        t.observe(&pod(p.clone()), unix(T0) + 31.0);
        let s = t.summary(unix(T0) + 50.0);
        assert_eq!(s.waiting_seconds, Some(2.0 + 19.0));
        assert_eq!(s.waiting_reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(s.started, Some(at(T0, 2.0)));
        assert_eq!(s.finished, None);
        assert_eq!(s.containers[0].ids, vec![container_id(1), container_id(9)]);
        assert_eq!(s.containers[0].doc.restarts, 1);
        assert!(!t.terminal());
    }

    #[test]
    fn routine_waiting_never_hides_the_reason_that_matters() {
        let uid = pod_uid(1);
        let json = job_pod("j", "j-x", &uid, T0, "1Gi");
        let mut t = Timeline::default();
        t.observe(
            &waiting(json.clone(), T0, "ContainerCreating"),
            unix(T0) + 1.0,
        );
        t.observe(&waiting(json.clone(), T0, "ErrImagePull"), unix(T0) + 5.0);
        t.observe(
            &waiting(json.clone(), T0, "ImagePullBackOff"),
            unix(T0) + 9.0,
        );
        t.observe(&waiting(json, T0, "ContainerCreating"), unix(T0) + 20.0);
        let s = t.summary(unix(T0) + 30.0);
        assert_eq!(s.waiting_reason.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(s.waiting_seconds, Some(30.0));
    }

    #[test]
    fn log_times_widen_but_never_narrow() {
        let mut t = Timeline::default();
        t.observe_log_times("2026-11-27T14:53:50Z", "2026-11-27T14:54:00Z");
        t.observe_log_times("2026-11-27T14:53:45Z", "2026-11-27T14:53:55Z");
        t.observe_log_times("not a time", "");
        let s = t.summary(0.0);
        assert_eq!(s.started.as_deref(), Some("2026-11-27T14:53:45Z"));
        assert_eq!(s.finished.as_deref(), Some("2026-11-27T14:54:00Z"));
        assert_eq!(s.reserved_memory_byte_seconds, None);
        assert!(!s.known_never_ran);
    }
}
