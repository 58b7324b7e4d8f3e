//! The judgement behind `jobarchive verify`: what a manifest promises (CONTRACT §3) against what
//! the bucket holds. Pure functions over a listing, the manifests and object digests, so every
//! rule is unit-tested without a store; `cli::verify` does the I/O and the printing.

use crate::contract::{ContainerManifest, KeyParts, Manifest, ObjectEntry};
use crate::read::ManifestDoc;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The log objects in scope, key → size, as the store lists them.
pub type Listing = HashMap<String, u64>;

/// One thing that does not match. Each names the object or byte range it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    UnreadableManifest {
        key: String,
        error: String,
    },
    /// A manifest stored under a key that is not its own (copied or moved).
    MisplacedManifest {
        key: String,
        expected: String,
    },
    /// An entry whose key is not the one its stream and first offset give.
    MisplacedEntry {
        key: String,
        expected: String,
    },
    Missing {
        key: String,
    },
    Size {
        key: String,
        manifest: u64,
        actual: u64,
    },
    Sha256 {
        key: String,
    },
    Gap {
        stream: String,
        from: u64,
        to: u64,
    },
    Overlap {
        stream: String,
        what: String,
        at: u64,
        covered: u64,
    },
    Unlisted {
        key: String,
    },
}

impl Problem {
    fn kind(&self) -> &'static str {
        match self {
            Problem::UnreadableManifest { .. } => "unreadable",
            Problem::MisplacedManifest { .. } | Problem::MisplacedEntry { .. } => "misplaced",
            Problem::Missing { .. } => "missing",
            Problem::Size { .. } => "size",
            Problem::Sha256 { .. } => "sha256",
            Problem::Gap { .. } => "gap",
            Problem::Overlap { .. } => "overlap",
            Problem::Unlisted { .. } => "unlisted",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<10} ", self.kind())?;
        match self {
            Problem::UnreadableManifest { key, error } => write!(f, "{key}: {error}"),
            Problem::MisplacedManifest { key, expected } => {
                write!(f, "{key}: its content belongs at {expected}")
            }
            Problem::MisplacedEntry { key, expected } => {
                write!(f, "{key}: the manifest lists it where {expected} belongs")
            }
            Problem::Missing { key } => write!(f, "{key}: listed in the manifest, not in the store"),
            Problem::Size {
                key,
                manifest,
                actual,
            } => write!(f, "{key}: {actual} bytes, the manifest says {manifest}"),
            Problem::Sha256 { key } => write!(f, "{key}: content differs from the manifest's SHA-256"),
            Problem::Gap { stream, from, to } => {
                write!(f, "{stream}: bytes {from}..{to} are in no object")
            }
            Problem::Overlap {
                stream,
                what,
                at,
                covered,
            } => write!(
                f,
                "{stream}: {what} starts at byte {at}, before the end of what precedes it ({covered})"
            ),
            Problem::Unlisted { key } => write!(f, "{key}: no manifest lists it"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Complete,
    Incomplete,
    Damaged,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Incomplete => "incomplete",
            Status::Damaged => "damaged",
        }
    }
}

/// The verdict on one attempt (one manifest).
#[derive(Debug)]
pub struct AttemptCheck {
    pub manifest_key: String,
    pub manifest: Option<Manifest>,
    pub problems: Vec<Problem>,
    /// Streams not yet complete: `container=C restart=R`.
    pub open_streams: Vec<String>,
}

impl AttemptCheck {
    pub fn status(&self) -> Status {
        if !self.problems.is_empty() {
            Status::Damaged
        } else if !self.open_streams.is_empty() || self.objects().next().is_none() {
            Status::Incomplete
        } else {
            Status::Complete
        }
    }

    fn objects(&self) -> impl Iterator<Item = &ObjectEntry> {
        self.manifest
            .iter()
            .flat_map(|m| &m.containers)
            .flat_map(|c| &c.objects)
    }

    /// Sort key: namespace, job, run, attempt as a number, pod (manifest keys sort
    /// `attempt=10` first).
    pub fn order(&self) -> (String, String, String, u32, String) {
        match &self.manifest {
            Some(m) => (
                m.pod.namespace.clone(),
                m.pod.job.clone(),
                m.pod.job_uid.clone().unwrap_or_default(),
                m.pod.attempt,
                m.pod.pod.clone(),
            ),
            None => (
                String::new(),
                String::new(),
                String::new(),
                0,
                self.manifest_key.clone(),
            ),
        }
    }

    /// `complete    default/job job_uid=U attempt=N pod=P: …`, the problems on lines below.
    pub fn render(&self) -> String {
        let who = match &self.manifest {
            Some(m) => attempt_label(
                &m.pod.namespace,
                &m.pod.job,
                m.pod
                    .job_uid
                    .as_deref()
                    .unwrap_or(crate::contract::UNKNOWN_UID),
                &m.pod.attempt.to_string(),
                &m.pod.pod,
            ),
            None => self.manifest_key.clone(),
        };
        let status = self.status();
        let detail = match status {
            Status::Damaged => format!("{} problem(s)", self.problems.len()),
            Status::Incomplete if self.open_streams.is_empty() => "no log objects yet".into(),
            Status::Incomplete => format!("still open: {}", self.open_streams.join(", ")),
            Status::Complete => {
                let (n, records, bytes) =
                    self.objects().fold((0u64, 0u64, 0u64), |(n, r, b), o| {
                        (n + 1, r + o.records, b + o.bytes)
                    });
                format!("{n} objects, {records} records, {bytes} bytes")
            }
        };
        let mut out = format!("{:<11} {who}: {detail}\n", status.label());
        for p in &self.problems {
            out.push_str(&format!("  {p}\n"));
        }
        out
    }
}

fn attempt_label(ns: &str, job: &str, uid: &str, attempt: &str, pod: &str) -> String {
    format!("{ns}/{job} job_uid={uid} attempt={attempt} pod={pod}")
}

/// Everything that can be judged from the manifest and the listing, before reading objects:
/// the manifest's own key, each entry's key, presence, size, and the coverage of every stream.
pub fn check_manifest(doc: &ManifestDoc, listing: &Listing) -> AttemptCheck {
    let mut check = AttemptCheck {
        manifest_key: doc.key.clone(),
        manifest: None,
        problems: Vec::new(),
        open_streams: Vec::new(),
    };
    let m = match &doc.parsed {
        Ok(m) => m,
        Err(error) => {
            check.problems.push(Problem::UnreadableManifest {
                key: doc.key.clone(),
                error: error.clone(),
            });
            return check;
        }
    };
    let expected = m.pod.manifest_key();
    if doc.key != expected {
        check.problems.push(Problem::MisplacedManifest {
            key: doc.key.clone(),
            expected,
        });
    }
    for c in &m.containers {
        if !c.complete {
            check
                .open_streams
                .push(format!("container={} restart={}", c.container, c.restart));
        }
        let stream = m.pod.stream(&c.container, c.restart);
        for o in &c.objects {
            let expected = stream.log_key(o.first_offset);
            if o.key != expected {
                check.problems.push(Problem::MisplacedEntry {
                    key: o.key.clone(),
                    expected,
                });
            }
            check.problems.extend(listed_problem(o, listing));
        }
        check.problems.extend(coverage_problems(c));
    }
    check.manifest = Some(m.clone());
    check
}

fn listed_problem(o: &ObjectEntry, listing: &Listing) -> Option<Problem> {
    match listing.get(&o.key) {
        None => Some(Problem::Missing { key: o.key.clone() }),
        Some(&actual) if actual != o.bytes => Some(Problem::Size {
            key: o.key.clone(),
            manifest: o.bytes,
            actual,
        }),
        Some(_) => None,
    }
}

/// Objects and skipped ranges must tile the stream from byte 0 to the manifest's end offset:
/// a hole means bytes that were shipped (or claimed) and are not there, an overlap means some
/// records would be counted twice by a query over the bucket.
pub fn coverage_problems(c: &ContainerManifest) -> Vec<Problem> {
    let stream = format!("container={} restart={}", c.container, c.restart);
    let mut spans: Vec<(u64, u64, String)> = c
        .objects
        .iter()
        .map(|o| (o.first_offset, o.end_offset, o.key.clone()))
        .chain(
            c.skipped
                .iter()
                .map(|&(a, b)| (a, b, format!("skipped range {a}..{b}"))),
        )
        .collect();
    spans.sort();
    let mut problems = Vec::new();
    let mut covered = 0u64;
    for (from, to, what) in spans {
        if from > covered {
            problems.push(Problem::Gap {
                stream: stream.clone(),
                from: covered,
                to: from,
            });
        } else if from < covered {
            problems.push(Problem::Overlap {
                stream: stream.clone(),
                what,
                at: from,
                covered,
            });
        }
        covered = covered.max(to);
    }
    if covered < c.end_offset {
        problems.push(Problem::Gap {
            stream,
            from: covered,
            to: c.end_offset,
        });
    }
    problems
}

/// An object to read and hash, with the attempt (index into the checks) that lists it.
#[derive(Clone, Debug)]
pub struct Expected {
    pub attempt: usize,
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The listed objects worth reading: those present at the size the manifest gives. A missing
/// or resized one is already judged from the listing; reading it would only report it again.
pub fn to_read(checks: &[AttemptCheck], listing: &Listing) -> Vec<Expected> {
    checks
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.objects().map(move |o| (i, o)))
        .filter(|(_, o)| listing.get(&o.key) == Some(&o.bytes))
        .map(|(attempt, o)| Expected {
            attempt,
            key: o.key.clone(),
            bytes: o.bytes,
            sha256: o.sha256.clone(),
        })
        .collect()
}

/// Compare an object's bytes with its manifest entry. `None` body: deleted since the listing.
pub fn check_body(e: &Expected, body: Option<&[u8]>) -> Option<Problem> {
    let key = e.key.clone();
    let Some(body) = body else {
        return Some(Problem::Missing { key });
    };
    if body.len() as u64 != e.bytes {
        return Some(Problem::Size {
            key,
            manifest: e.bytes,
            actual: body.len() as u64,
        });
    }
    (hex::encode(Sha256::digest(body)) != e.sha256).then_some(Problem::Sha256 { key })
}

/// Log objects that no manifest lists, grouped by the attempt folder they sit in.
pub fn unlisted(checks: &[AttemptCheck], listing: &Listing) -> Vec<UnlistedGroup> {
    let listed: HashSet<&str> = checks
        .iter()
        .flat_map(|c| c.objects())
        .map(|o| o.key.as_str())
        .collect();
    let mut keys: Vec<&String> = listing
        .keys()
        .filter(|k| !listed.contains(k.as_str()))
        .collect();
    keys.sort();
    let mut groups: Vec<UnlistedGroup> = Vec::new();
    for key in keys {
        let who = folder_label(key);
        match groups.last_mut() {
            Some(g) if g.who == who => g.keys.push(key.clone()),
            _ => groups.push(UnlistedGroup {
                who,
                keys: vec![key.clone()],
            }),
        }
    }
    groups
}

/// Unlisted objects of one attempt folder (or of no recognisable folder).
#[derive(Debug)]
pub struct UnlistedGroup {
    pub who: String,
    pub keys: Vec<String>,
}

impl UnlistedGroup {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<11} {}: {} object(s) that no manifest lists\n",
            "unlisted",
            self.who,
            self.keys.len()
        );
        for key in &self.keys {
            let p = Problem::Unlisted { key: key.clone() };
            out.push_str(&format!("  {p}\n"));
        }
        out
    }
}

fn folder_label(key: &str) -> String {
    let p = KeyParts::parse(key);
    let get = |name| p.get(name).unwrap_or("?");
    attempt_label(
        get("namespace"),
        get("job"),
        get("job_uid"),
        get("attempt"),
        get("pod"),
    )
}

/// Totals for the closing line: the scope covered (namespaces, jobs, attempts, objects), then
/// the verdicts, so a reader can tell "all is well" from "little was looked at".
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub namespaces: usize,
    /// Runs of jobs: (namespace, job, job_uid).
    pub jobs: usize,
    /// Log objects the manifests list or the store holds.
    pub objects: usize,
    pub complete: usize,
    pub incomplete: usize,
    pub damaged: usize,
    pub unlisted: usize,
}

impl Summary {
    pub fn of(checks: &[AttemptCheck], unlisted: &[UnlistedGroup], listing: &Listing) -> Summary {
        let mut s = Summary {
            unlisted: unlisted.iter().map(|g| g.keys.len()).sum(),
            ..Summary::default()
        };
        let mut namespaces: HashSet<String> = HashSet::new();
        let mut jobs: HashSet<(String, String, String)> = HashSet::new();
        let mut objects: HashSet<&str> = listing.keys().map(String::as_str).collect();
        let mut scope = |key: &str| {
            let p = KeyParts::parse(key);
            if let (Some(ns), Some(job)) = (p.get("namespace"), p.get("job")) {
                namespaces.insert(ns.to_string());
                let uid = p.get("job_uid").unwrap_or(crate::contract::UNKNOWN_UID);
                jobs.insert((ns.to_string(), job.to_string(), uid.to_string()));
            }
        };
        listing.keys().for_each(|k| scope(k));
        for c in checks {
            scope(&c.manifest_key);
            objects.extend(c.objects().map(|o| o.key.as_str()));
            match c.status() {
                Status::Complete => s.complete += 1,
                Status::Incomplete => s.incomplete += 1,
                Status::Damaged => s.damaged += 1,
            }
        }
        s.namespaces = namespaces.len();
        s.jobs = jobs.len();
        s.objects = objects.len();
        s
    }

    pub fn ok(&self) -> bool {
        self.damaged == 0 && self.unlisted == 0
    }

    pub fn attempts(&self) -> usize {
        self.complete + self.incomplete + self.damaged
    }

    /// `verify: 2 namespaces, 3 jobs, 5 attempts, 41 objects: 4 complete, 0 incomplete, 1 damaged; 0 unlisted objects`
    pub fn line(&self) -> String {
        format!(
            "verify: {}, {}, {}, {}: {} complete, {} incomplete, {} damaged; {} unlisted objects",
            count(self.namespaces, "namespace"),
            count(self.jobs, "job"),
            count(self.attempts(), "attempt"),
            count(self.objects, "object"),
            self.complete,
            self.incomplete,
            self.damaged,
            self.unlisted
        )
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::PodIdentity;

    fn identity() -> PodIdentity {
        PodIdentity {
            cluster: "c1".into(),
            node: "n1".into(),
            namespace: "default".into(),
            pod: "job-abcde".into(),
            pod_uid: "u1".into(),
            job: "job".into(),
            job_uid: None,
            cronjob: None,
            attempt: 2,
            completion_index: None,
        }
    }

    fn entry(first: u64, end: u64) -> ObjectEntry {
        let body = format!("object {first}");
        ObjectEntry {
            key: identity().stream("main", 0).log_key(first),
            first_offset: first,
            end_offset: end,
            records: 1,
            bytes: body.len() as u64,
            sha256: hex::encode(Sha256::digest(body.as_bytes())),
            first_ts: String::new(),
            last_ts: String::new(),
        }
    }

    fn manifest(objects: Vec<ObjectEntry>, skipped: Vec<(u64, u64)>, end: u64) -> Manifest {
        Manifest {
            pod: identity(),
            updated: String::new(),
            containers: vec![ContainerManifest {
                container: "main".into(),
                restart: 0,
                complete: true,
                end_offset: end,
                objects,
                skipped,
                file: None,
            }],
        }
    }

    fn doc(m: Manifest) -> ManifestDoc {
        ManifestDoc {
            key: m.pod.manifest_key(),
            parsed: Ok(m),
        }
    }

    fn listing_of(m: &Manifest) -> Listing {
        m.containers[0]
            .objects
            .iter()
            .map(|o| (o.key.clone(), o.bytes))
            .collect()
    }

    fn kinds(c: &AttemptCheck) -> Vec<&'static str> {
        c.problems.iter().map(Problem::kind).collect()
    }

    #[test]
    fn a_tiled_stream_with_skips_is_complete() {
        let m = manifest(vec![entry(0, 10), entry(15, 30)], vec![], 32);
        let mut m2 = m.clone();
        m2.containers[0].skipped = vec![(10, 15), (30, 32)];
        let c = check_manifest(&doc(m2.clone()), &listing_of(&m2));
        assert_eq!(kinds(&c), Vec::<&str>::new());
        assert_eq!(c.status(), Status::Complete);
        // Without the recorded skip the same objects leave holes.
        let c = check_manifest(&doc(m.clone()), &listing_of(&m));
        assert_eq!(
            c.problems,
            vec![
                Problem::Gap {
                    stream: "container=main restart=0".into(),
                    from: 10,
                    to: 15
                },
                Problem::Gap {
                    stream: "container=main restart=0".into(),
                    from: 30,
                    to: 32
                }
            ]
        );
        assert_eq!(c.status(), Status::Damaged);
    }

    #[test]
    fn an_open_stream_is_incomplete_not_damaged() {
        let mut m = manifest(vec![entry(0, 10)], vec![], 10);
        m.containers[0].complete = false;
        let c = check_manifest(&doc(m.clone()), &listing_of(&m));
        assert_eq!(c.status(), Status::Incomplete);
        assert!(c.render().contains("still open: container=main restart=0"));
    }

    #[test]
    fn missing_resized_overlapping_and_misplaced_entries_are_named() {
        let mut moved = entry(20, 30);
        moved.key = moved.key.replace("attempt=2", "attempt=1");
        let m = manifest(vec![entry(0, 10), entry(5, 20), moved.clone()], vec![], 30);
        let mut listing = listing_of(&m);
        listing.insert(entry(0, 10).key, 999);
        listing.remove(&entry(5, 20).key);
        let c = check_manifest(&doc(m), &listing);
        assert_eq!(
            kinds(&c),
            ["size", "missing", "misplaced", "overlap"],
            "{:?}",
            c.problems
        );
        assert!(c.render().contains(&format!("misplaced  {}", moved.key)));
    }

    #[test]
    fn bodies_are_checked_by_size_and_sha256() {
        let e = entry(0, 10);
        let exp = Expected {
            attempt: 0,
            key: e.key.clone(),
            bytes: e.bytes,
            sha256: e.sha256.clone(),
        };
        assert_eq!(check_body(&exp, Some(b"object 0")), None);
        assert_eq!(
            check_body(&exp, Some(b"object 1")),
            Some(Problem::Sha256 { key: e.key.clone() })
        );
        assert!(matches!(
            check_body(&exp, Some(b"obj")),
            Some(Problem::Size { actual: 3, .. })
        ));
        assert!(matches!(
            check_body(&exp, None),
            Some(Problem::Missing { .. })
        ));
    }

    #[test]
    fn unreadable_and_moved_manifests_are_damaged() {
        let bad = ManifestDoc {
            key: "manifests/x/pod=p.json".into(),
            parsed: Err("expected value at line 1".into()),
        };
        assert_eq!(
            kinds(&check_manifest(&bad, &Listing::new())),
            ["unreadable"]
        );
        let m = manifest(vec![], vec![], 0);
        let moved = ManifestDoc {
            key: m.pod.manifest_key().replace("attempt=2", "attempt=3"),
            parsed: Ok(m),
        };
        assert_eq!(
            kinds(&check_manifest(&moved, &Listing::new())),
            ["misplaced"]
        );
    }

    #[test]
    fn unlisted_objects_are_grouped_by_attempt_folder() {
        let m = manifest(vec![entry(0, 10)], vec![], 10);
        let checks = vec![check_manifest(&doc(m.clone()), &listing_of(&m))];
        let mut listing = listing_of(&m);
        let stray = entry(10, 20).key;
        listing.insert(stray.clone(), 5);
        listing.insert("logs/junk.txt".into(), 1);
        let groups = unlisted(&checks, &listing);
        assert_eq!(groups.len(), 2);
        assert!(groups[0].render().starts_with(
            "unlisted    default/job job_uid=unknown attempt=2 pod=job-abcde: 1 object"
        ));
        let s = Summary::of(&checks, &groups, &listing);
        assert_eq!((s.complete, s.unlisted, s.ok()), (1, 2, false));
    }

    #[test]
    fn a_resized_object_is_reported_once() {
        let m = manifest(vec![entry(0, 10), entry(10, 20)], vec![], 20);
        let resized = entry(0, 10).key;
        let mut listing = listing_of(&m);
        listing.insert(resized.clone(), 3);
        let mut checks = vec![check_manifest(&doc(m), &listing)];
        // What `verify` does next: read and hash each object `to_read` names.
        for e in to_read(&checks, &listing) {
            let body = if e.key == resized { "obj" } else { "object 10" };
            checks[e.attempt]
                .problems
                .extend(check_body(&e, Some(body.as_bytes())));
        }
        assert_eq!(kinds(&checks[0]), ["size"], "{:?}", checks[0].problems);
        assert_eq!(checks[0].render().matches(resized.as_str()).count(), 1);
    }

    #[test]
    fn the_summary_names_the_scope_it_covered() {
        let a = manifest(vec![entry(0, 10)], vec![], 10);
        let mut b = manifest(vec![], vec![], 0);
        b.pod.namespace = "batch".into();
        b.pod.job = "chatty".into();
        b.pod.job_uid = Some("u9".into());
        let e = ObjectEntry {
            key: b.pod.stream("main", 0).log_key(0),
            ..entry(0, 10)
        };
        b.containers[0].objects = vec![e];
        let mut listing = listing_of(&a);
        listing.extend(listing_of(&b));
        let checks = vec![
            check_manifest(&doc(a), &listing),
            check_manifest(&doc(b), &listing),
        ];
        let s = Summary::of(&checks, &[], &listing);
        assert_eq!(
            s.line(),
            "verify: 2 namespaces, 2 jobs, 2 attempts, 2 objects: 2 complete, 0 incomplete, 0 damaged; 0 unlisted objects"
        );
        let one = Summary::of(
            &checks[..1],
            &[],
            &listing_of(&manifest(vec![entry(0, 10)], vec![], 10)),
        );
        assert!(
            one.line()
                .starts_with("verify: 1 namespace, 1 job, 1 attempt, 1 object: "),
            "{}",
            one.line()
        );
    }
}
