//! `jobarchive fetch <job>`: every attempt's logs back from the store, in order, each record
//! once; optionally only a time window (`--since/--until`), and with `--follow` the batches of a
//! running job as they land. Objects are streamed a few at a time, so memory does not grow with
//! the size of the job.

use super::window::{now_nanos, Window};
use super::StoreArgs;
use crate::contract::{LogKey, ObjectEntry, RecordRead};
use crate::decode;
use crate::error::{CliError, CliResult};
use crate::read::{self, Dedup, JobRun, StreamKey};
use crate::store::Store;
use base64::Engine;
use clap::{Args, ValueEnum};
use std::collections::HashMap;
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
    let runs = read::job_runs(read::manifests(&store, cluster, ns, Some(&args.job)).await?);
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
    // Only a follow needs to remember what it read, and only a window the objects' time spans:
    // per-object state is what grows with a job's size, so keep none that is not needed.
    let mut seen = HashMap::new();
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
    printer.print(&store, &keys).await?;
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
        printer.print(store, &keys).await?;
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

    async fn print(&mut self, store: &Store, keys: &[LogKey]) -> CliResult<()> {
        let style = self.style;
        let render = move |body: &[u8]| style.render(body);
        read::for_each_object(store, keys, render, |_key, r| self.emit(r)).await?;
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
