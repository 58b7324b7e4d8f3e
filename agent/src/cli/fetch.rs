//! `jobarchive fetch <job>`: every attempt's logs back from the store, in order, each record
//! once; optionally only a time window (`--since/--until`), and with `--follow` the batches of a
//! running job as they land. Objects are streamed a few at a time, so memory does not grow with
//! the size of the job.

use super::window::Window;
use super::StoreArgs;
use crate::clock::now_nanos;
use crate::contract::{LogKey, ObjectEntry, RecordRead};
use crate::decode;
use crate::error::{CliError, CliResult};
use crate::progress::Progress;
use crate::read::{self, Dedup, JobRun, StreamKey};
use crate::store::Store;
use base64::Engine;
use clap::{Args, ValueEnum};
use std::collections::{BTreeSet, HashMap};
use std::io::{StdoutLock, Write};
use std::sync::Mutex;
use std::time::Duration;

/// How often `--follow` lists the job's objects again.
const FOLLOW_POLL: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Job name
    pub job: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this attempt: a number, or `last`
    #[arg(long, value_name = "N|last")]
    pub attempt: Option<String>,
    /// Only this container
    #[arg(long)]
    pub container: Option<String>,
    /// This run of the job (default: the most recent; others are listed on stderr)
    #[arg(long)]
    pub job_uid: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
    /// Prefix each line with [attempt=N pod=P container=C]
    #[arg(long)]
    pub prefix: bool,
    /// text: the messages; jsonl: the archived records as stored
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Only records at or after this time: RFC 3339, or a duration back from now (2h, 1h30m, 7d)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only records before this time: RFC 3339, or a duration back from now
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Keep printing new records of a running job as they land (polls every 2 s; Ctrl-C stops)
    #[arg(short = 'f', long, conflicts_with = "until")]
    pub follow: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Jsonl,
}

pub async fn run(args: FetchArgs) -> CliResult<()> {
    let window = Window::parse(args.since.as_deref(), args.until.as_deref(), now_nanos())
        .map_err(CliError::usage)?;
    let store = args.store.open().await?;
    let (cluster, ns) = (&args.store.cluster, &args.store.namespace);
    let runs = read::job_runs(read::manifests(&store, cluster, Some(ns), Some(&args.job)).await?);
    let run = pick_run(&runs, &args).ok_or_else(|| {
        let what = args
            .job_uid
            .as_ref()
            .map(|u| format!(" with job_uid {u}"))
            .unwrap_or_default();
        CliError::not_found(format!(
            "no archived logs for job {}{what} in namespace {ns} (cluster {cluster}) at {}",
            args.job,
            store.describe()
        ))
    })?;
    let listing = read::log_listing(&store, cluster, ns, &args.job, &run.job_uid).await?;
    if !args.follow {
        // A follow may wait for an attempt or container still to come; otherwise say what is there.
        if let Some(why) = nothing_matches(&args, &listing) {
            return Err(CliError::not_found(format!(
                "{why} (namespace {ns}, cluster {cluster}, at {})",
                store.describe()
            )));
        }
    }
    // Only a follow needs to remember what it read, and only a window the objects' time spans:
    // per-object state is what grows with a job's size, so keep none that is not needed.
    let mut seen = HashMap::new();
    let sizes: HashMap<String, u64> = if args.follow {
        HashMap::new()
    } else {
        listing
            .iter()
            .map(|(k, size)| (k.key.clone(), *size))
            .collect()
    };
    let keys = select(listing, &args, args.follow.then_some(&mut seen))?;
    let keys = if window.is_open() {
        keys
    } else {
        let spans = object_spans(read::listed_objects(&store, cluster, run).await?);
        keys.into_iter()
            .filter(|k| spans.get(&k.key).is_none_or(|(a, b)| window.may_hold(a, b)))
            .collect()
    };
    if keys.is_empty() && !args.follow {
        return Err(CliError::not_found(format!(
            "no log objects for job {} matching the filters in namespace {ns} at {}",
            args.job,
            store.describe()
        )));
    }
    let mut printer = Printer::new(&args, window);
    let progress = if args.follow {
        Progress::hidden()
    } else {
        let bytes = keys.iter().filter_map(|k| sizes.get(&k.key)).sum();
        Progress::beside_output("fetch", "objects", Some(keys.len() as u64), bytes)
    };
    printer
        .print(&store, &keys, |key| {
            progress.inc(sizes.get(&key.key).copied().unwrap_or(0))
        })
        .await?;
    progress.finish();
    drop(sizes);
    if args.follow {
        tokio::select! {
            r = follow(&store, &args, &run.job_uid, seen, &mut printer) => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    printer.finish()
}

fn pick_run<'a>(runs: &'a [JobRun], args: &FetchArgs) -> Option<&'a JobRun> {
    let run = match &args.job_uid {
        Some(uid) => runs.iter().find(|r| &r.job_uid == uid),
        None => runs.last(),
    }?;
    for other in runs.iter().filter(|r| r.job_uid != run.job_uid) {
        eprintln!(
            "note: another run of job {}: --job-uid {} ({} .. {})",
            args.job, other.job_uid, other.first_ts, other.last_ts
        );
    }
    Some(run)
}

/// key → (first_ts, last_ts) of every object the run's manifests list (objects that landed
/// after the last manifest write are not in it, and are read whatever the window).
fn object_spans(objects: Vec<ObjectEntry>) -> HashMap<String, (String, String)> {
    objects
        .into_iter()
        .map(|o| (o.key, (o.first_ts, o.last_ts)))
        .collect()
}

/// The listed objects that pass the filters, in output order; with `seen` (a follow), only
/// those not read yet at their current size, which `seen` then takes in.
fn select(
    mut listing: Vec<(LogKey, u64)>,
    args: &FetchArgs,
    seen: Option<&mut HashMap<String, u64>>,
) -> CliResult<Vec<LogKey>> {
    filter_keys(&mut listing, args)?;
    if let Some(seen) = seen {
        listing.retain(|(k, size)| seen.get(&k.key) != Some(size));
        for (k, size) in &listing {
            seen.insert(k.key.clone(), *size);
        }
    }
    Ok(listing.into_iter().map(|(k, _)| k).collect())
}

/// Poll the run's objects until Ctrl-C (the caller's) or until stdout is closed. A failed
/// listing is reported and retried: a follow should outlive a network blip.
async fn follow(
    store: &Store,
    args: &FetchArgs,
    job_uid: &str,
    mut seen: HashMap<String, u64>,
    printer: &mut Printer,
) -> CliResult<()> {
    let (cluster, ns) = (&args.store.cluster, &args.store.namespace);
    while !printer.closed {
        printer.flush()?;
        tokio::time::sleep(FOLLOW_POLL).await;
        let listing = match read::log_listing(store, cluster, ns, &args.job, job_uid).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("warning: listing failed, retrying: {e}");
                continue;
            }
        };
        let keys = select(listing, args, Some(&mut seen))?;
        printer.print(store, &keys, |_| {}).await?;
    }
    Ok(())
}

/// How records become output: what of the arguments the parsing threads need.
#[derive(Clone, Copy)]
struct Style {
    format: Format,
    prefix: bool,
    timestamps: bool,
    window: Window,
}

/// One object's records as output text, with where each record's text ends: the printer still
/// has to drop the records an earlier object already printed.
struct Rendered {
    text: Vec<u8>,
    records: Vec<Mark>,
    /// The streams of the object's records (one, unless the object was made by hand).
    streams: Vec<StreamKey>,
    unreadable: u64,
}

struct Mark {
    offset: u64,
    /// End of the record's text in `Rendered::text` (it starts where the previous one ended).
    end: usize,
    stream: usize,
}

/// Output buffers handed back by the printer for the next objects: fresh multi-MiB buffers
/// cost a page fault per page.
static TEXT_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn text_buffer(capacity: usize) -> Vec<u8> {
    let mut text = TEXT_BUFFERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    text.reserve(capacity);
    text
}

fn give_back(mut text: Vec<u8>) {
    let mut pool = TEXT_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < read::FETCH_PARALLELISM {
        text.clear();
        pool.push(text);
    }
}

impl Style {
    fn render(self, body: &[u8]) -> Rendered {
        let mut r = Rendered {
            // The text of a record is never longer than the record.
            text: text_buffer(body.len()),
            records: Vec::new(),
            streams: Vec::new(),
            unreadable: 0,
        };
        for line in lines(body) {
            match decode::record(line) {
                Ok(rec) if !self.window.contains(&rec.ts) => {}
                Ok(rec) => {
                    let stream = r.stream_index(&rec);
                    write_record(&mut r.text, self, &rec, line).expect("writing to a Vec");
                    r.records.push(Mark {
                        offset: rec.offset,
                        end: r.text.len(),
                        stream,
                    });
                }
                Err(_) => r.unreadable += 1,
            }
        }
        r
    }
}

/// The non-empty lines of an object's body.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain(std::iter::once(body.len()))
        .map(move |end| {
            let line = &body[start..end];
            start = end + 1;
            line
        })
        .filter(|l| !l.is_empty())
}

impl Rendered {
    fn stream_index(&mut self, rec: &RecordRead<'_>) -> usize {
        let same = |s: &StreamKey| s.0 == rec.pod_uid && s.1 == rec.container && s.2 == rec.restart;
        match self.streams.iter().position(same) {
            Some(i) => i,
            None => {
                let key = (
                    rec.pod_uid.to_string(),
                    rec.container.to_string(),
                    rec.restart,
                );
                self.streams.push(key);
                self.streams.len() - 1
            }
        }
    }
}

/// Writes records to stdout once each, in the chosen format, inside the time window.
struct Printer {
    out: std::io::BufWriter<StdoutLock<'static>>,
    style: Style,
    dedup: Dedup,
    unreadable: u64,
    /// The reader went away (`| head`): stop quietly.
    closed: bool,
}

impl Printer {
    fn new(args: &FetchArgs, window: Window) -> Printer {
        Printer {
            out: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock()),
            style: Style {
                format: args.format,
                prefix: args.prefix,
                timestamps: args.timestamps,
                window,
            },
            dedup: Dedup::default(),
            unreadable: 0,
            closed: false,
        }
    }

    /// Prints the records of `keys`; `done` hears of each object printed.
    async fn print(
        &mut self,
        store: &Store,
        keys: &[LogKey],
        mut done: impl FnMut(&LogKey),
    ) -> CliResult<()> {
        let style = self.style;
        let render = move |body: &[u8]| style.render(body);
        read::for_each_object(store, keys, render, |key, r| {
            let emitted = self.emit(r);
            done(key);
            emitted
        })
        .await?;
        Ok(())
    }

    /// Write an object's records that were not printed before; runs of them in one write.
    fn emit(&mut self, r: Rendered) -> std::io::Result<()> {
        self.unreadable += r.unreadable;
        let runs = self.unprinted(&r);
        let written = runs
            .into_iter()
            .try_for_each(|run| self.write(&r.text[run]));
        give_back(r.text);
        written
    }

    /// The ranges of `r.text` whose records were not printed before (each stream's offsets
    /// looked up once per object, not per record); they count as printed from here on.
    fn unprinted(&mut self, r: &Rendered) -> Vec<std::ops::Range<usize>> {
        let mut next: Vec<u64> = r.streams.iter().map(|s| self.dedup.next(s)).collect();
        let (mut runs, mut start) = (Vec::<std::ops::Range<usize>>::new(), 0);
        for m in &r.records {
            let next = &mut next[m.stream];
            if m.offset >= *next {
                *next = m.offset + 1;
                match runs.last_mut() {
                    Some(run) if run.end == start => run.end = m.end,
                    _ => runs.push(start..m.end),
                }
            }
            start = m.end;
        }
        for (stream, next) in r.streams.iter().zip(next) {
            self.dedup.advance(stream, next);
        }
        runs
    }

    fn write(&mut self, text: &[u8]) -> std::io::Result<()> {
        let written = self.out.write_all(text);
        if let Err(e) = &written {
            self.closed |= e.kind() == std::io::ErrorKind::BrokenPipe;
        }
        written
    }

    fn flush(&mut self) -> CliResult<()> {
        match self.out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(CliError::store(format!("writing output: {e}"))),
            Ok(()) => Ok(()),
        }
    }

    fn finish(mut self) -> CliResult<()> {
        self.flush()?;
        if self.unreadable > 0 {
            eprintln!("warning: {} unreadable records skipped", self.unreadable);
        }
        Ok(())
    }
}

/// When `--attempt` or `--container` names something the run does not have, what it has:
/// `job J has attempts 1-6; no attempt 9`, `attempt 2 of job J has containers main; no container x`.
fn nothing_matches(args: &FetchArgs, listing: &[(LogKey, u64)]) -> Option<String> {
    let job = &args.job;
    let attempts: BTreeSet<u32> = listing.iter().map(|(k, _)| k.attempt).collect();
    let chosen = match args.attempt.as_deref() {
        None => None,
        Some("last") => attempts.last().copied(),
        // Not a number: filter_keys says so.
        Some(n) => Some(n.parse::<u32>().ok()?),
    };
    if let Some(n) = chosen.filter(|n| !attempts.contains(n)) {
        return Some(format!(
            "job {job} has {}; no attempt {n}",
            counted("attempt", &ranges(&attempts), attempts.len())
        ));
    }
    let wanted = args.container.as_ref()?;
    let containers: BTreeSet<&str> = listing
        .iter()
        .filter(|(k, _)| chosen.is_none_or(|n| k.attempt == n))
        .map(|(k, _)| k.container.as_str())
        .collect();
    if containers.contains(wanted.as_str()) {
        return None;
    }
    let list: Vec<&str> = containers.into_iter().collect();
    let whose = match chosen {
        Some(n) => format!("attempt {n} of job {job}"),
        None => format!("job {job}"),
    };
    Some(format!(
        "{whose} has {}; no container {wanted}",
        counted("container", &list.join(", "), list.len())
    ))
}

/// `attempt 3`, `attempts 1-6`, `no attempts`.
fn counted(noun: &str, list: &str, n: usize) -> String {
    match n {
        0 => format!("no {noun}s"),
        1 => format!("{noun} {list}"),
        _ => format!("{noun}s {list}"),
    }
}

/// `1-6`, `1-3, 5, 7-8`.
fn ranges(numbers: &BTreeSet<u32>) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => runs.push((n, n)),
        }
    }
    let parts: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    parts.join(", ")
}

fn filter_keys(keys: &mut Vec<(LogKey, u64)>, args: &FetchArgs) -> CliResult<()> {
    if let Some(c) = &args.container {
        keys.retain(|(k, _)| &k.container == c);
    }
    match args.attempt.as_deref() {
        None => {}
        Some("last") => {
            let last = keys.iter().map(|(k, _)| k.attempt).max().unwrap_or(0);
            keys.retain(|(k, _)| k.attempt == last);
        }
        Some(n) => {
            let n: u32 = n.parse().map_err(|_| {
                CliError::usage(format!("--attempt takes a number or `last`, not {n:?}"))
            })?;
            keys.retain(|(k, _)| k.attempt == n);
        }
    }
    Ok(())
}

fn write_record(
    out: &mut impl Write,
    args: Style,
    r: &RecordRead<'_>,
    raw: &[u8],
) -> std::io::Result<()> {
    if args.format == Format::Jsonl {
        out.write_all(raw)?;
        return out.write_all(b"\n");
    }
    if args.prefix {
        write!(
            out,
            "[attempt={} pod={} container={}] ",
            r.attempt, r.pod, r.container
        )?;
    }
    if args.timestamps {
        write!(out, "{} ", r.ts)?;
    }
    match r
        .message_b64
        .as_deref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    {
        Some(bytes) => out.write_all(&bytes)?,
        None => out.write_all(r.message.as_bytes())?,
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> FetchArgs {
        let argv = ["jobarchive", "fetch", "exit-nonzero"].iter().chain(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Fetch(a) => a,
            other => panic!("{other:?}"),
        }
    }

    /// Attempts 1-6 with container `main`, attempt 3 also with `sidecar`.
    fn listing() -> Vec<(LogKey, u64)> {
        let key = |attempt: u32, container: &str| {
            format!("logs/cluster=default/namespace=default/job=exit-nonzero/job_uid=u/attempt={attempt}/pod=p{attempt}/container={container}/restart=0/00000000000000000000.ndjson.gz")
        };
        let mut keys: Vec<String> = (1..=6).map(|a| key(a, "main")).collect();
        keys.push(key(3, "sidecar"));
        keys.iter()
            .map(|k| (LogKey::parse(k).unwrap(), 10))
            .collect()
    }

    #[test]
    fn filters_that_match_nothing_say_what_there_is() {
        let l = listing();
        let why = |extra: &[&str]| nothing_matches(&args(extra), &l);
        assert_eq!(
            why(&["--attempt", "9"]).as_deref(),
            Some("job exit-nonzero has attempts 1-6; no attempt 9")
        );
        assert_eq!(
            why(&["--container", "x"]).as_deref(),
            Some("job exit-nonzero has containers main, sidecar; no container x")
        );
        assert_eq!(
            why(&["--attempt", "2", "--container", "sidecar"]).as_deref(),
            Some("attempt 2 of job exit-nonzero has container main; no container sidecar")
        );
        for fine in [
            &["--attempt", "3", "--container", "sidecar"][..],
            &["--attempt", "last"],
            &["--attempt", "junk"],
            &[],
        ] {
            assert_eq!(why(fine), None, "{fine:?}");
        }
        assert_eq!(
            nothing_matches(&args(&["--attempt", "1"]), &[]).as_deref(),
            Some("job exit-nonzero has no attempts; no attempt 1")
        );
    }

    #[test]
    fn attempt_ranges() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(ranges(&set(&[1, 2, 3, 4, 5, 6])), "1-6");
        assert_eq!(ranges(&set(&[1, 2, 3, 5, 7, 8])), "1-3, 5, 7-8");
        assert_eq!(ranges(&set(&[4])), "4");
    }
}
