//! The judgement behind `jobarchive verify`: what a manifest promises (docs/audit.md) against
//! what the bucket holds. Pure functions over a listing, the manifest heads and parts and object
//! digests, so every rule is unit-tested without a store; `cli::verify` does the I/O and the
//! printing.
//!
//! A head says, per stream, where the stream ends, whether it is complete, and totals; its
//! parts list the objects, skips and gaps that tile the stream from byte 0 to that end. Both
//! must agree, every listed object must be there with its size and SHA-256, and every object
//! must be listed, save the newest objects of a stream still being written (they land before
//! the manifest is next brought up to date).

use crate::contract::{ContainerManifest, Gap, KeyParts, Manifest, ObjectEntry, PartLine};
use crate::read::{ManifestDoc, PartDoc};
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
    /// A part that cannot be read, or has no lines.
    UnreadablePart {
        key: String,
        error: String,
    },
    /// The head's totals or part count disagree with its parts.
    Disagrees {
        stream: String,
        what: &'static str,
        head: u64,
        parts: u64,
    },
}

impl Problem {
    fn kind(&self) -> &'static str {
        match self {
            Problem::UnreadableManifest { .. } | Problem::UnreadablePart { .. } => "unreadable",
            Problem::Disagrees { .. } => "head",
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
            Problem::UnreadablePart { key, error } => write!(f, "{key}: {error}"),
            Problem::Disagrees {
                stream,
                what,
                head,
                parts,
            } => write!(
                f,
                "{stream}: the head says {head} {what}, its parts {parts}"
            ),
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
    /// Every object the manifest lists (from its head or its parts).
    pub objects: Vec<ObjectEntry>,
    pub problems: Vec<Problem>,
    /// Streams not yet complete: `container=C restart=R`.
    pub open_streams: Vec<String>,
    /// Bytes gone for good, per stream: the attempt cannot be complete.
    pub gaps: Vec<(String, Gap)>,
}

impl AttemptCheck {
    pub fn status(&self) -> Status {
        if !self.problems.is_empty() {
            Status::Damaged
        } else if !self.open_streams.is_empty() || !self.gaps.is_empty() || self.objects.is_empty()
        {
            Status::Incomplete
        } else {
            Status::Complete
        }
    }

    fn objects(&self) -> impl Iterator<Item = &ObjectEntry> {
        self.objects.iter()
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
            Status::Incomplete if !self.gaps.is_empty() => {
                let lost: Vec<String> = self
                    .gaps
                    .iter()
                    .map(|(stream, g)| {
                        let at = if g.first_offset == g.end_offset {
                            format!("an unknown number of bytes at offset {}", g.first_offset)
                        } else {
                            format!("bytes {}..{}", g.first_offset, g.end_offset)
                        };
                        format!("{stream} lost {at} ({})", g.reason)
                    })
                    .collect();
                format!("gap: {}", lost.join("; "))
            }
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

/// Everything that can be judged from the manifest (head and parts) and the listing, before
/// reading objects: the keys of the head, its parts and entries, presence, size, the head's
/// totals, and the coverage of every stream. `parts`: the parts found under the attempt's
/// folder of the parts tree.
pub fn check_manifest(doc: &ManifestDoc, parts: &[&PartDoc], listing: &Listing) -> AttemptCheck {
    let mut check = AttemptCheck {
        manifest_key: doc.key.clone(),
        manifest: None,
        objects: Vec::new(),
        problems: Vec::new(),
        open_streams: Vec::new(),
        gaps: Vec::new(),
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
        let label = format!("container={} restart={}", c.container, c.restart);
        if !c.complete {
            check.open_streams.push(label.clone());
        }
        let stream = m.pod.stream(&c.container, c.restart);
        let lines = if c.inline() {
            c.inline_lines()
        } else {
            let prefix = stream.part_key(0);
            let prefix = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
            let mine: Vec<&PartDoc> = parts
                .iter()
                .copied()
                .filter(|p| p.key.starts_with(prefix))
                .collect();
            part_lines(
                c,
                &label,
                &mine,
                |first| stream.part_key(first),
                &mut check.problems,
            )
        };
        for line in &lines {
            match line {
                PartLine::Object(o) => {
                    let expected = stream.log_key(o.first_offset);
                    if o.key != expected {
                        check.problems.push(Problem::MisplacedEntry {
                            key: o.key.clone(),
                            expected,
                        });
                    }
                    check.problems.extend(listed_problem(o, listing));
                    check.objects.push(o.clone());
                }
                PartLine::Gap(g) => check.gaps.push((label.clone(), g.clone())),
                PartLine::Skipped { .. } => {}
            }
        }
        check
            .problems
            .extend(coverage_problems(&label, &lines, c.end_offset));
    }
    check.manifest = Some(m.clone());
    check
}

/// The lines of a format-2 stream: its parts in offset order, each under its own key, up to
/// the head's end (a part beyond it was written by an agent that stopped before the head
/// that would list it; it is not part of the manifest yet), with the head's totals checked.
fn part_lines(
    c: &ContainerManifest,
    label: &str,
    parts: &[&PartDoc],
    key_of: impl Fn(u64) -> String,
    problems: &mut Vec<Problem>,
) -> Vec<PartLine> {
    let mut lines = Vec::new();
    let mut counted = 0u64;
    for p in parts {
        let part = match &p.parsed {
            Ok(part) if !part.is_empty() => part,
            Ok(_) => {
                problems.push(Problem::UnreadablePart {
                    key: p.key.clone(),
                    error: "empty part".into(),
                });
                continue;
            }
            Err(error) => {
                problems.push(Problem::UnreadablePart {
                    key: p.key.clone(),
                    error: error.clone(),
                });
                continue;
            }
        };
        let first = part[0].span().0;
        let end = part.iter().map(|l| l.span().1).max().unwrap_or(first);
        if first >= c.end_offset && end > c.end_offset {
            continue;
        }
        let expected = key_of(first);
        if p.key != expected {
            problems.push(Problem::MisplacedEntry {
                key: p.key.clone(),
                expected,
            });
        }
        counted += 1;
        lines.extend(part.iter().cloned());
    }
    let objects = || lines.iter().filter_map(PartLine::object);
    let sums = [
        ("parts", c.parts, counted),
        ("objects", c.object_count, objects().count() as u64),
        ("records", c.records, objects().map(|o| o.records).sum()),
        ("bytes", c.bytes, objects().map(|o| o.bytes).sum()),
    ];
    for (what, head, parts) in sums {
        if head != parts {
            problems.push(Problem::Disagrees {
                stream: label.to_string(),
                what,
                head,
                parts,
            });
        }
    }
    lines
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

/// Objects, skipped ranges and gaps must tile the stream from byte 0 to the head's end offset:
/// a hole means bytes that were shipped (or claimed) and are not there, an overlap means some
/// records would be counted twice by a query over the bucket. A gap of unknown size (lost
/// bytes whose count nobody knows) covers nothing and is no hole.
pub fn coverage_problems(stream: &str, lines: &[PartLine], end_offset: u64) -> Vec<Problem> {
    let mut spans: Vec<(u64, u64, String)> = lines
        .iter()
        .filter(|l| {
            let (a, b) = l.span();
            a < b
        })
        .map(|l| {
            let (a, b) = l.span();
            let what = match l {
                PartLine::Object(o) => o.key.clone(),
                PartLine::Skipped { .. } => format!("skipped range {a}..{b}"),
                PartLine::Gap(_) => format!("lost range {a}..{b}"),
            };
            (a, b, what)
        })
        .collect();
    spans.sort();
    let mut problems = Vec::new();
    let mut covered = 0u64;
    for (from, to, what) in spans {
        if from > covered {
            problems.push(Problem::Gap {
                stream: stream.to_string(),
                from: covered,
                to: from,
            });
        } else if from < covered {
            problems.push(Problem::Overlap {
                stream: stream.to_string(),
                what,
                at: from,
                covered,
            });
        }
        covered = covered.max(to);
    }
    if covered < end_offset {
        problems.push(Problem::Gap {
            stream: stream.to_string(),
            from: covered,
            to: end_offset,
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

/// Log objects that no manifest lists, grouped by the attempt folder they sit in. Not counted:
/// the objects that landed after the manifest was last brought up to date (`pending`).
pub fn unlisted(checks: &[AttemptCheck], listing: &Listing) -> Vec<UnlistedGroup> {
    let pending = pending_keys(checks, listing);
    let listed: HashSet<&str> = checks
        .iter()
        .flat_map(|c| c.objects())
        .map(|o| o.key.as_str())
        .collect();
    let mut keys: Vec<&String> = listing
        .keys()
        .filter(|k| !listed.contains(k.as_str()) && !pending.contains(k.as_str()))
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

/// Log folder of each open stream → where its head says it ends.
fn open_stream_ends(checks: &[AttemptCheck]) -> HashMap<String, u64> {
    checks
        .iter()
        .filter_map(|c| c.manifest.as_ref())
        .flat_map(|m| {
            m.containers.iter().filter(|c| !c.complete).map(|c| {
                (
                    m.pod.stream(&c.container, c.restart).log_dir_key(),
                    c.end_offset,
                )
            })
        })
        .collect()
}

/// The unlisted objects of a stream still open that landed after its manifest was last written:
/// the lowest of them starts exactly where its head says the stream ends (the agent writes a
/// stream's objects in order), and the rest follow it. An object of an open stream anywhere
/// else, or of a complete stream, is unlisted.
fn pending_keys<'a>(checks: &[AttemptCheck], listing: &'a Listing) -> HashSet<&'a str> {
    let open = open_stream_ends(checks);
    let listed: HashSet<&str> = checks
        .iter()
        .flat_map(|c| c.objects())
        .map(|o| o.key.as_str())
        .collect();
    let mut by_stream: HashMap<&str, Vec<(u64, &'a str)>> = HashMap::new();
    for key in listing.keys().filter(|k| !listed.contains(k.as_str())) {
        let (Some(slash), Some(parsed)) = (key.rfind('/'), crate::contract::LogKey::parse(key))
        else {
            continue;
        };
        if open.contains_key(&key[..=slash]) {
            by_stream
                .entry(&key[..=slash])
                .or_default()
                .push((parsed.offset, key.as_str()));
        }
    }
    by_stream
        .into_iter()
        .filter(|(dir, keys)| keys.iter().map(|k| k.0).min() == open.get(*dir).copied())
        .flat_map(|(_, keys)| keys.into_iter().map(|k| k.1))
        .collect()
}

/// Objects that landed after their manifest was last written (open streams only): they are in
/// no part yet, and are no mismatch.
pub fn pending(checks: &[AttemptCheck], listing: &Listing) -> usize {
    pending_keys(checks, listing).len()
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
    /// Objects of running streams that landed after their manifest was last written.
    pub pending: usize,
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
        let pending = match self.pending {
            0 => String::new(),
            n => format!(" ({n} newer objects of running streams, not in their manifest yet)"),
        };
        format!(
            "verify: {}, {}, {}, {}: {} complete, {} incomplete, {} damaged; {} unlisted objects{pending}",
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
            format: 1,
            containers: vec![ContainerManifest {
                container: "main".into(),
                restart: 0,
                complete: true,
                end_offset: end,
                objects,
                skipped,
                ..ContainerManifest::default()
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
        let c = check_manifest(&doc(m2.clone()), &[], &listing_of(&m2));
        assert_eq!(kinds(&c), Vec::<&str>::new());
        assert_eq!(c.status(), Status::Complete);
        // Without the recorded skip the same objects leave holes.
        let c = check_manifest(&doc(m.clone()), &[], &listing_of(&m));
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
        let c = check_manifest(&doc(m.clone()), &[], &listing_of(&m));
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
        let c = check_manifest(&doc(m), &[], &listing);
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
            kinds(&check_manifest(&bad, &[], &Listing::new())),
            ["unreadable"]
        );
        let m = manifest(vec![], vec![], 0);
        let moved = ManifestDoc {
            key: m.pod.manifest_key().replace("attempt=2", "attempt=3"),
            parsed: Ok(m),
        };
        assert_eq!(
            kinds(&check_manifest(&moved, &[], &Listing::new())),
            ["misplaced"]
        );
    }

    #[test]
    fn unlisted_objects_are_grouped_by_attempt_folder() {
        let m = manifest(vec![entry(0, 10)], vec![], 10);
        let checks = vec![check_manifest(&doc(m.clone()), &[], &listing_of(&m))];
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

    /// A format-2 manifest of stream main/0: a head and the parts given as line lists.
    fn v2(parts: &[Vec<PartLine>], complete: bool) -> (ManifestDoc, Vec<PartDoc>) {
        let stream = identity().stream("main", 0);
        let mut head = ContainerManifest {
            container: "main".into(),
            restart: 0,
            complete,
            ..ContainerManifest::default()
        };
        for lines in parts {
            head.parts += 1;
            for l in lines {
                head.count(l);
            }
        }
        let m = Manifest {
            pod: identity(),
            updated: String::new(),
            format: 2,
            containers: vec![head],
        };
        let docs = parts
            .iter()
            .map(|lines| PartDoc {
                key: stream.part_key(lines[0].span().0),
                parsed: Ok(lines.clone()),
            })
            .collect();
        (doc(m), docs)
    }

    fn obj(first: u64, end: u64) -> PartLine {
        PartLine::Object(entry(first, end))
    }

    fn listing_v2(parts: &[Vec<PartLine>]) -> Listing {
        parts
            .iter()
            .flatten()
            .filter_map(PartLine::object)
            .map(|o| (o.key.clone(), o.bytes))
            .collect()
    }

    #[test]
    fn parts_tile_the_stream_and_agree_with_their_head() {
        let parts = vec![vec![obj(0, 10), obj(10, 20)], vec![obj(20, 30)]];
        let (head, docs) = v2(&parts, true);
        let refs: Vec<&PartDoc> = docs.iter().collect();
        let c = check_manifest(&head, &refs, &listing_v2(&parts));
        assert_eq!(kinds(&c), Vec::<&str>::new(), "{:?}", c.problems);
        assert_eq!((c.status(), c.objects.len()), (Status::Complete, 3));
        // A part gone: its bytes are a hole, and the head's totals disagree.
        let c = check_manifest(&head, &refs[..1], &listing_v2(&parts));
        assert_eq!(kinds(&c), ["head", "head", "head", "head", "gap"]);
        // A part copied under another offset is misplaced.
        let mut moved = docs.clone();
        moved[1].key = moved[1].key.replace("0020.ndjson", "0021.ndjson");
        let refs: Vec<&PartDoc> = moved.iter().collect();
        assert_eq!(
            kinds(&check_manifest(&head, &refs, &listing_v2(&parts))),
            ["misplaced"]
        );
    }

    #[test]
    fn a_gap_makes_the_attempt_incomplete_and_is_named() {
        let gap = PartLine::Gap(Gap {
            first_offset: 10,
            end_offset: 10,
            reason: "rotated and deleted".into(),
        });
        let parts = vec![vec![obj(0, 10), gap, obj(10, 20)]];
        let (head, docs) = v2(&parts, true);
        let refs: Vec<&PartDoc> = docs.iter().collect();
        let c = check_manifest(&head, &refs, &listing_v2(&parts));
        assert_eq!(c.status(), Status::Incomplete);
        let line = c.render();
        assert!(
            line.contains("gap: container=main restart=0 lost an unknown number of bytes at offset 10 (rotated and deleted)"),
            "{line}"
        );
    }

    #[test]
    fn newer_objects_of_an_open_stream_are_pending_not_unlisted() {
        let parts = vec![vec![obj(0, 10)]];
        let stream = identity().stream("main", 0);
        for (complete, extra, want_pending, want_unlisted) in [
            // Landed after the last manifest write: they start where the head ends.
            (false, vec![10, 25], 2, 0),
            // Somewhere else in an open stream: unlisted.
            (false, vec![99_999], 0, 1),
            // A complete stream lists everything.
            (true, vec![10], 0, 1),
        ] {
            let (head, docs) = v2(&parts, complete);
            let refs: Vec<&PartDoc> = docs.iter().collect();
            let mut listing = listing_v2(&parts);
            for offset in extra {
                listing.insert(stream.log_key(offset), 5);
            }
            let checks = vec![check_manifest(&head, &refs, &listing)];
            let groups = unlisted(&checks, &listing);
            assert_eq!(
                (
                    pending_keys(&checks, &listing).len(),
                    groups.iter().map(|g| g.keys.len()).sum::<usize>()
                ),
                (want_pending, want_unlisted)
            );
        }
    }

    #[test]
    fn a_resized_object_is_reported_once() {
        let m = manifest(vec![entry(0, 10), entry(10, 20)], vec![], 20);
        let resized = entry(0, 10).key;
        let mut listing = listing_of(&m);
        listing.insert(resized.clone(), 3);
        let mut checks = vec![check_manifest(&doc(m), &[], &listing)];
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
            check_manifest(&doc(a), &[], &listing),
            check_manifest(&doc(b), &[], &listing),
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
