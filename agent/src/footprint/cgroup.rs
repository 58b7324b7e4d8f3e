//! cgroup v2 sampling: finds a pod's cgroup by its UID under either kubelet cgroup driver and
//! turns periodic reads of `memory.current`, `memory.peak`, `cpu.stat` and `memory.events` into
//! a memory-over-time series, a peak, CPU seconds and an OOM-kill count.
//!
//! Everything read here may vanish at any moment (the kubelet removes a pod's cgroup once it
//! is gone), so every failure is "no reading this time", never an error or a panic. Paths are
//! resolved and checked to stay under the cgroup root, so a symlink planted in a (possibly
//! container-writable) hierarchy cannot make the agent read files elsewhere on the host.
//!
//! Cost matters: a busy node keeps the log folders of hundreds of finished pods whose cgroups
//! are gone. A pod's directory is resolved once and then read with a few opens; pods not found
//! yet are looked up in one listing of the kubepods parents per pass ([`PodCgroups`]), not with a
//! dozen path lookups each.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// QoS class directories; Guaranteed pods sit directly under the kubepods parent.
const QOS_CLASSES: [&str; 2] = ["burstable", "besteffort"];

/// Parents of the pod cgroups for the systemd driver: the default one, and the nested one the
/// kubelet creates when its `cgroupRoot` is `/kubelet` (kind, some node images).
const SYSTEMD_PARENTS: [&str; 2] = ["kubepods.slice", "kubelet.slice/kubelet-kubepods.slice"];

/// The same two parents for the cgroupfs driver.
const CGROUPFS_PARENTS: [&str; 2] = ["kubepods", "kubelet/kubepods"];

/// Interface files are a few hundred bytes; a larger one is not what we think it is.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The series is halved past this length: a day-long Job sampled every 10 s stays a few hundred
/// KiB of JSON. Peak and integral are accumulated on every sample, so they lose nothing.
const MAX_SERIES: usize = 4096;

/// One read of a cgroup's interface files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub memory_bytes: u64,
    pub cpu_usage_usec: Option<u64>,
    pub oom_kills: Option<u64>,
    /// `memory.peak` (kernel 5.19 and later).
    pub memory_peak_bytes: Option<u64>,
}

/// Finds the pod's cgroup directory (canonical) under `cgroup_root`, trying both cgroup drivers
/// and every QoS class.
pub fn find_pod_cgroup(cgroup_root: &Path, pod_uid: &str) -> Option<PathBuf> {
    PodCgroups::new(cgroup_root).get(pod_uid)
}

/// Reads the interface files of the cgroup `dir`; None when `memory.current` cannot be read.
pub fn read_cgroup(cgroup_root: &Path, dir: &Path) -> Option<Reading> {
    read_at(&inside(&fs::canonicalize(cgroup_root).ok()?, dir)?)
}

/// The container scopes inside a pod cgroup, by runtime container id.
pub fn container_scopes(cgroup_root: &Path, pod_dir: &Path) -> Vec<(String, PathBuf)> {
    let resolved = fs::canonicalize(cgroup_root)
        .ok()
        .and_then(|root| inside(&root, pod_dir));
    resolved.map(|dir| scopes_at(&dir)).unwrap_or_default()
}

/// The pod cgroups under a root as one pass sees them: the kubepods parents of both drivers
/// and every QoS class are listed once, on the first lookup, and pods are found by UID.
pub struct PodCgroups {
    root: PathBuf,
    /// The canonical root and the pod directories found, by pod UID.
    found: OnceCell<Option<(PathBuf, HashMap<String, PathBuf>)>>,
}

impl PodCgroups {
    pub fn new(cgroup_root: &Path) -> PodCgroups {
        PodCgroups {
            root: cgroup_root.to_path_buf(),
            found: OnceCell::new(),
        }
    }

    /// The pod's cgroup directory, canonical and inside the root.
    pub fn get(&self, pod_uid: &str) -> Option<PathBuf> {
        let (root, dirs) = self
            .found
            .get_or_init(|| list_pod_cgroups(&self.root))
            .as_ref()?;
        inside(root, dirs.get(pod_uid)?)
    }
}

fn list_pod_cgroups(cgroup_root: &Path) -> Option<(PathBuf, HashMap<String, PathBuf>)> {
    let root = fs::canonicalize(cgroup_root).ok()?;
    let mut dirs = HashMap::new();
    for parent in pod_parents() {
        let Ok(entries) = fs::read_dir(root.join(parent)) else {
            continue;
        };
        // The entry type from the listing: a symlink is not taken for a pod directory.
        for e in entries.filter_map(Result::ok) {
            let uid = e.file_name().to_str().and_then(pod_uid_of);
            if let Some(uid) = uid.filter(|_| e.file_type().is_ok_and(|t| t.is_dir())) {
                // The first driver and class in `pod_parents` order wins, as the kubelet
                // uses one driver: a second match would be a leftover.
                dirs.entry(uid).or_insert_with(|| e.path());
            }
        }
    }
    Some((root, dirs))
}

/// Where pod cgroups live, relative to the root: the two kubelet parents of each driver, and
/// their QoS class children (Guaranteed pods sit directly under the parent).
fn pod_parents() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in SYSTEMD_PARENTS {
        let prefix = parent
            .rsplit('/')
            .next()
            .and_then(|slice| slice.strip_suffix(".slice"))
            .unwrap_or("kubepods");
        out.push(PathBuf::from(parent));
        for qos in QOS_CLASSES {
            out.push(Path::new(parent).join(format!("{prefix}-{qos}.slice")));
        }
    }
    for parent in CGROUPFS_PARENTS {
        out.push(PathBuf::from(parent));
        for qos in QOS_CLASSES {
            out.push(Path::new(parent).join(qos));
        }
    }
    out
}

/// The pod UID in a pod cgroup's name: `kubepods-burstable-pod<uid>.slice` (systemd, with the
/// UID's dashes escaped as underscores) or `pod<uid>` (cgroupfs).
fn pod_uid_of(name: &str) -> Option<String> {
    let uid = match name.strip_suffix(".slice") {
        Some(unit) => unit.rsplit_once("-pod")?.1.replace('_', "-"),
        None => name.strip_prefix("pod")?.to_string(),
    };
    // A UID with anything but these would be a path, not a name.
    let plausible = !uid.is_empty() && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    plausible.then_some(uid)
}

/// The canonical form of `path` if it resolves to somewhere under `root` (itself canonical).
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(path).ok()?;
    real.starts_with(root).then_some(real)
}

/// An interface file of a directory already resolved inside the root. The file itself must not
/// be a symlink (cgroupfs has none); O_NONBLOCK so a FIFO planted in a test tree cannot hang.
fn read_small(path: &Path) -> Option<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text).ok()?;
    Some(text)
}

fn read_integer(path: &Path) -> Option<u64> {
    read_small(path)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`cpu.stat`, `memory.events`).
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    read_small(path)?.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Reads a cgroup directory that `locate` or `scopes_at` found inside the root.
fn read_at(dir: &Path) -> Option<Reading> {
    Some(Reading {
        memory_bytes: read_integer(&dir.join("memory.current"))?,
        cpu_usage_usec: read_keyed(&dir.join("cpu.stat"), "usage_usec"),
        oom_kills: read_keyed(&dir.join("memory.events"), "oom_kill"),
        memory_peak_bytes: read_integer(&dir.join("memory.peak")),
    })
}

/// The runtime's container id in a scope name: `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `docker-<id>.scope` (systemd) or a bare `<id>` directory (cgroupfs).
fn container_id(name: &str) -> Option<&str> {
    // CRI-O's monitor process gets a scope of its own; it is not a container.
    if name.contains("conmon") {
        return None;
    }
    let base = name.strip_suffix(".scope").unwrap_or(name);
    let id = base.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Scope directories of a pod directory resolved inside the root; the entry type comes from
/// the directory listing, so a symlink among them is not a directory here.
fn scopes_at(pod_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(pod_dir) else {
        return Vec::new();
    };
    let mut scopes: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name();
            let id = container_id(name.to_str()?)?.to_string();
            Some((id, e.path()))
        })
        .collect();
    scopes.sort();
    scopes
}

/// What one container scope used, over all the samples that found it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScopeUsage {
    pub peak_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// Accumulates the samples of one pod.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    /// Cached so a sample costs a few reads, not a lookup; dropped when it stops reading.
    location: Option<PathBuf>,
    series: Vec<(f64, u64, f64)>,
    last: Option<(f64, u64)>,
    used_byte_seconds: f64,
    sampled_peak: Option<u64>,
    kernel_peak: Option<u64>,
    cpu_seconds: Option<f64>,
    oom_kills: Option<u64>,
    containers: BTreeMap<String, ScopeUsage>,
}

impl Sampler {
    /// Reads the pod's cgroup once. `record` adds the reading to the memory-over-time series
    /// (and its integral); otherwise it only updates the peak, CPU and OOM totals.
    pub(crate) fn sample(&mut self, cgroups: &PodCgroups, pod_uid: &str, now: f64, record: bool) {
        if self.location.is_none() {
            self.location = cgroups.get(pod_uid);
        }
        let Some(dir) = self.location.clone() else {
            return;
        };
        let Some(reading) = read_at(&dir) else {
            self.location = None;
            return;
        };
        self.sampled_peak = self.sampled_peak.max(Some(reading.memory_bytes));
        self.kernel_peak = self.kernel_peak.max(reading.memory_peak_bytes);
        self.oom_kills = self.oom_kills.max(reading.oom_kills);
        if let Some(usec) = reading.cpu_usage_usec {
            self.cpu_seconds = Some(self.cpu_seconds.unwrap_or(0.0).max(usec as f64 / 1e6));
        }
        for (id, scope_dir) in scopes_at(&dir) {
            if let Some(r) = read_at(&scope_dir) {
                let usage = self.containers.entry(id).or_default();
                usage.peak_bytes = usage
                    .peak_bytes
                    .max(Some(r.memory_bytes))
                    .max(r.memory_peak_bytes);
                if let Some(usec) = r.cpu_usage_usec {
                    usage.cpu_seconds = Some(usec as f64 / 1e6);
                }
            }
        }
        if record {
            self.record(now, reading.memory_bytes);
        }
    }

    fn record(&mut self, now: f64, memory: u64) {
        if let Some((t, m)) = self.last {
            // A clock step backwards would make a negative area.
            if now <= t {
                return;
            }
            self.used_byte_seconds += (now - t) * (m as f64 + memory as f64) / 2.0;
        }
        self.last = Some((now, memory));
        self.series
            .push((now, memory, self.cpu_seconds.unwrap_or(0.0)));
        if self.series.len() > MAX_SERIES {
            let newest = self.series.pop();
            let mut index = 0;
            self.series.retain(|_| {
                index += 1;
                index % 2 == 1
            });
            self.series.extend(newest);
        }
    }

    pub(crate) fn has_samples(&self) -> bool {
        self.last.is_some()
    }

    pub(crate) fn used_byte_seconds(&self) -> f64 {
        self.used_byte_seconds
    }

    pub(crate) fn series(&self) -> &[(f64, u64, f64)] {
        &self.series
    }

    /// The kernel's exact peak where it has one; the sampled maximum misses short spikes.
    pub(crate) fn peak_bytes(&self) -> Option<u64> {
        self.kernel_peak.max(self.sampled_peak)
    }

    pub(crate) fn peak_source(&self) -> Option<&'static str> {
        match (self.kernel_peak, self.sampled_peak) {
            (Some(k), s) if Some(k) >= s => Some("memory.peak"),
            (_, Some(_)) => Some("samples"),
            _ => None,
        }
    }

    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        self.cpu_seconds
    }

    pub(crate) fn oom_kills(&self) -> Option<u64> {
        self.oom_kills
    }

    pub(crate) fn container(&self, id: &str) -> Option<&ScopeUsage> {
        self.containers.get(id)
    }

    pub(crate) fn containers(&self) -> impl Iterator<Item = (&str, &ScopeUsage)> {
        self.containers.iter().map(|(id, u)| (id.as_str(), u))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{container_id as cid, pod_cgroup, pod_uid, write_usage, Layout};
    use super::*;

    const LAYOUTS: [Layout; 6] = [
        Layout::Systemd("guaranteed"),
        Layout::Systemd("burstable"),
        Layout::Systemd("besteffort"),
        Layout::Cgroupfs("guaranteed"),
        Layout::Cgroupfs("burstable"),
        Layout::Cgroupfs("besteffort"),
    ];

    #[test]
    fn finds_pods_under_both_drivers_and_every_qos_class() {
        for (n, layout) in LAYOUTS.into_iter().enumerate() {
            let tmp = tempfile::tempdir().unwrap();
            let uid = pod_uid(n as u32);
            // A neighbour pod of the same node must not be mistaken for ours.
            pod_cgroup(tmp.path(), layout, &pod_uid(99), &cid(99));
            let (pod_dir, _) = pod_cgroup(tmp.path(), layout, &uid, &cid(1));
            let found = find_pod_cgroup(tmp.path(), &uid);
            assert_eq!(
                found,
                Some(fs::canonicalize(&pod_dir).unwrap()),
                "{layout:?}"
            );
            assert_eq!(
                find_pod_cgroup(tmp.path(), &pod_uid(50)),
                None,
                "{layout:?}"
            );
        }
    }

    #[test]
    fn finds_pods_under_a_nested_kubelet_root() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = pod_uid(7);
        let dir = tmp.path().join(format!(
            "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice",
            uid.replace('-', "_")
        ));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            find_pod_cgroup(tmp.path(), &uid),
            Some(fs::canonicalize(dir).unwrap())
        );
    }

    #[test]
    fn uids_that_are_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("kubepods/pod..")).unwrap();
        assert_eq!(find_pod_cgroup(tmp.path(), ".."), None);
        assert_eq!(find_pod_cgroup(tmp.path(), "../../etc"), None);
        assert_eq!(find_pod_cgroup(tmp.path(), ""), None);
    }

    #[test]
    fn reads_the_kernel_formats() {
        let tmp = tempfile::tempdir().unwrap();
        let (pod_dir, _) = pod_cgroup(
            tmp.path(),
            Layout::Systemd("burstable"),
            &pod_uid(1),
            &cid(1),
        );
        write_usage(&pod_dir, 123_456, 7_890, Some(200_000), 2);
        let r = read_cgroup(tmp.path(), &pod_dir).unwrap();
        assert_eq!(
            r,
            Reading {
                memory_bytes: 123_456,
                cpu_usage_usec: Some(7_890),
                oom_kills: Some(2),
                memory_peak_bytes: Some(200_000),
            }
        );
        // Older kernels have no memory.peak; a missing cpu.stat is not fatal either.
        fs::remove_file(pod_dir.join("memory.peak")).unwrap();
        fs::remove_file(pod_dir.join("cpu.stat")).unwrap();
        let r = read_cgroup(tmp.path(), &pod_dir).unwrap();
        assert_eq!((r.memory_peak_bytes, r.cpu_usage_usec), (None, None));
        fs::write(pod_dir.join("memory.current"), "garbage\n").unwrap();
        assert_eq!(read_cgroup(tmp.path(), &pod_dir), None);
        fs::remove_file(pod_dir.join("memory.current")).unwrap();
        assert_eq!(read_cgroup(tmp.path(), &pod_dir), None);
    }

    #[test]
    fn lists_container_scopes_by_runtime_id() {
        let tmp = tempfile::tempdir().unwrap();
        let (pod_dir, _) = pod_cgroup(
            tmp.path(),
            Layout::Systemd("besteffort"),
            &pod_uid(1),
            &cid(1),
        );
        fs::create_dir(pod_dir.join(format!("crio-{}.scope", cid(2)))).unwrap();
        fs::create_dir(pod_dir.join(format!("crio-conmon-{}.scope", cid(3)))).unwrap();
        fs::write(
            pod_dir.join(format!("cri-containerd-{}.scope.txt", cid(4))),
            "",
        )
        .unwrap();
        let ids: Vec<_> = container_scopes(tmp.path(), &pod_dir)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![cid(1), cid(2)]);

        let (pod_dir, _) = pod_cgroup(
            tmp.path(),
            Layout::Cgroupfs("besteffort"),
            &pod_uid(2),
            &cid(5),
        );
        fs::create_dir(pod_dir.join("not-a-container")).unwrap();
        let ids: Vec<_> = container_scopes(tmp.path(), &pod_dir)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![cid(5)]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_not_followed() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        write_usage(outside.path(), 999, 999, None, 0);
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cgroup");

        // The pod directory itself points outside.
        let uid = pod_uid(1);
        let qos = root.join("kubepods/besteffort");
        fs::create_dir_all(&qos).unwrap();
        symlink(outside.path(), qos.join(format!("pod{uid}"))).unwrap();
        assert_eq!(find_pod_cgroup(&root, &uid), None);
        let mut s = Sampler::default();
        s.sample(&PodCgroups::new(&root), &uid, 1.0, true);
        assert!(!s.has_samples());

        // A file inside a real pod directory points outside.
        let uid = pod_uid(2);
        let (pod_dir, _) = pod_cgroup(&root, Layout::Cgroupfs("burstable"), &uid, &cid(1));
        symlink(
            outside.path().join("memory.current"),
            pod_dir.join("memory.current"),
        )
        .unwrap();
        let mut s = Sampler::default();
        s.sample(&PodCgroups::new(&root), &uid, 1.0, true);
        assert!(!s.has_samples());
        assert_eq!(s.peak_bytes(), None);

        // A symlink that stays inside the root is fine (the root itself may be one).
        let link_root = tmp.path().join("link");
        symlink(&root, &link_root).unwrap();
        fs::remove_file(pod_dir.join("memory.current")).unwrap();
        write_usage(&pod_dir, 10, 20, None, 0);
        s.sample(&PodCgroups::new(&link_root), &uid, 2.0, true);
        assert_eq!(s.peak_bytes(), Some(10));
    }

    #[test]
    fn sampler_integrates_and_survives_the_cgroup_vanishing() {
        for layout in LAYOUTS {
            let tmp = tempfile::tempdir().unwrap();
            let uid = pod_uid(3);
            let (pod_dir, ctr_dir) = pod_cgroup(tmp.path(), layout, &uid, &cid(3));
            let mut s = Sampler::default();
            s.sample(&PodCgroups::new(tmp.path()), &pod_uid(4), 0.0, true);
            assert!(!s.has_samples(), "another pod's sample");

            write_usage(&pod_dir, 100, 1_000_000, None, 0);
            write_usage(&ctr_dir, 60, 900_000, None, 0);
            s.sample(&PodCgroups::new(tmp.path()), &uid, 10.0, true);
            write_usage(&pod_dir, 300, 2_500_000, None, 1);
            write_usage(&ctr_dir, 250, 2_000_000, Some(280), 1);
            s.sample(&PodCgroups::new(tmp.path()), &uid, 20.0, true);
            s.sample(&PodCgroups::new(tmp.path()), &uid, 15.0, true); // clock stepped back: ignored
            assert_eq!(s.used_byte_seconds(), 2_000.0, "{layout:?}");
            assert_eq!(s.series(), &[(10.0, 100, 1.0), (20.0, 300, 2.5)]);
            assert_eq!(
                (s.peak_bytes(), s.peak_source()),
                (Some(300), Some("samples"))
            );
            assert_eq!(s.cpu_seconds(), Some(2.5));
            assert_eq!(s.oom_kills(), Some(1));
            let scope = s.container(&cid(3)).unwrap();
            assert_eq!(
                (scope.peak_bytes, scope.cpu_seconds),
                (Some(280), Some(2.0))
            );

            // Not recorded: totals move, the series does not.
            write_usage(&pod_dir, 50, 2_600_000, Some(350), 1);
            s.sample(&PodCgroups::new(tmp.path()), &uid, 30.0, false);
            assert_eq!(s.series().len(), 2);
            assert_eq!(
                (s.peak_bytes(), s.peak_source()),
                (Some(350), Some("memory.peak"))
            );
            assert_eq!(s.cpu_seconds(), Some(2.6));

            fs::remove_dir_all(&pod_dir).unwrap();
            s.sample(&PodCgroups::new(tmp.path()), &uid, 40.0, true);
            s.sample(&PodCgroups::new(tmp.path()), &uid, 50.0, true);
            assert_eq!(s.series().len(), 2);
            assert_eq!(s.peak_bytes(), Some(350));
        }
    }

    #[test]
    fn a_missing_cgroup_is_found_by_the_first_pass_after_it_appears() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = pod_uid(6);
        let mut s = Sampler::default();
        for now in [0.0, 5.0, 10.0] {
            s.sample(&PodCgroups::new(tmp.path()), &uid, now, true);
        }
        assert!(!s.has_samples());
        let pass = PodCgroups::new(tmp.path());
        assert_eq!(pass.get(&uid), None);
        let (pod_dir, _) = pod_cgroup(tmp.path(), Layout::Systemd("burstable"), &uid, &cid(6));
        write_usage(&pod_dir, 7, 0, None, 0);
        // One pass lists the parents once: what appears during it is for the next one.
        s.sample(&pass, &uid, 15.0, true);
        assert!(!s.has_samples());
        s.sample(&PodCgroups::new(tmp.path()), &uid, 20.0, true);
        assert_eq!(s.series(), &[(20.0, 7, 0.0)]);
        // Found: later passes read it without a lookup.
        let empty = tempfile::tempdir().unwrap();
        s.sample(&PodCgroups::new(empty.path()), &uid, 21.0, true);
        assert_eq!(s.series().len(), 2);
    }

    #[test]
    fn pod_uids_are_read_from_both_drivers_names() {
        let uid = "0b2c1b7e-86c2-4a3b-9f43-9a3f7b1c0d11";
        let escaped = uid.replace('-', "_");
        for name in [
            format!("kubepods-burstable-pod{escaped}.slice"),
            format!("kubepods-pod{escaped}.slice"),
            format!("kubelet-kubepods-besteffort-pod{escaped}.slice"),
            format!("pod{uid}"),
        ] {
            assert_eq!(pod_uid_of(&name).as_deref(), Some(uid), "{name}");
        }
        for name in [
            "kubepods-burstable.slice",
            "pods.max",
            "pod",
            "pod../x",
            "besteffort",
        ] {
            assert_eq!(pod_uid_of(name), None, "{name}");
        }
    }

    #[test]
    fn long_series_are_thinned_but_keep_their_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = pod_uid(5);
        let (pod_dir, _) = pod_cgroup(tmp.path(), Layout::Systemd("guaranteed"), &uid, &cid(5));
        write_usage(&pod_dir, 1_000, 0, None, 0);
        let mut s = Sampler::default();
        for i in 0..=MAX_SERIES {
            s.sample(&PodCgroups::new(tmp.path()), &uid, i as f64, true);
        }
        assert_eq!(s.series().len(), MAX_SERIES / 2 + 1);
        assert_eq!(s.series().first().unwrap().0, 0.0);
        assert_eq!(s.series().last().unwrap().0, MAX_SERIES as f64);
        assert_eq!(s.used_byte_seconds(), 1_000.0 * MAX_SERIES as f64);
    }
}
