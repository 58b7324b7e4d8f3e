//! Progress of long work on stderr (`fetch` of a large job, `verify` of a whole bucket, `agent
//! --drain` of a backlog): objects and bytes done and to go, rate and ETA, drawn by indicatif.
//! Only when stderr is a terminal, so `fetch | grep`, CI logs and `kubectl logs` stay clean.
//! `JOBARCHIVE_PROGRESS=always` draws it on a pipe too (plain `\r`-separated lines: for tests),
//! `never` turns it off.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the drain's bar looks at the counters (the reading thread only bumps atomics).
const POLL: Duration = Duration::from_millis(250);

/// Whether progress is drawn: on a terminal, unless `JOBARCHIVE_PROGRESS` says otherwise.
fn wanted() -> Option<ProgressDrawTarget> {
    match std::env::var("JOBARCHIVE_PROGRESS").as_deref() {
        Ok("never") => None,
        Ok("always") => Some(ProgressDrawTarget::term_like(Box::new(Lines(Mutex::new(
            std::io::stderr(),
        ))))),
        _ if std::io::stderr().is_terminal() => Some(ProgressDrawTarget::stderr()),
        _ => None,
    }
}

/// The bar being drawn, if any, so that log lines (`suspend`) do not tear it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `f` (a write to stderr) with the active bar, if any, lifted out of the way.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// A counter of objects and bytes against known totals. Does nothing when progress is not
/// drawn, so callers need no check of their own.
pub struct Progress {
    bar: Option<ProgressBar>,
    objects: AtomicU64,
    objects_total: Option<u64>,
    noun: &'static str,
}

impl Progress {
    /// `what`: what is being done (`verify`, `fetch`, `drain`); `noun`: what the objects are
    /// (`objects checked`). `objects_total`: `None` when unknown (a drain).
    pub fn new(
        what: &'static str,
        noun: &'static str,
        objects_total: Option<u64>,
        bytes_total: u64,
    ) -> Progress {
        Progress::with_target(wanted(), what, noun, objects_total, bytes_total)
    }

    /// For a command that prints its results while it works (`fetch`): drawn only when
    /// stdout is a file. On a terminal the output shows its own progress, and through a pipe
    /// (`fetch | grep`) the bar would share the terminal with what the pipe prints.
    pub fn beside_output(
        what: &'static str,
        noun: &'static str,
        objects_total: Option<u64>,
        bytes_total: u64,
    ) -> Progress {
        let forced = std::env::var("JOBARCHIVE_PROGRESS").is_ok_and(|v| v == "always");
        let target = (forced || stdout_is_file()).then(wanted).flatten();
        Progress::with_target(target, what, noun, objects_total, bytes_total)
    }

    pub fn hidden() -> Progress {
        Progress::with_target(None, "", "", None, 0)
    }

    fn with_target(
        target: Option<ProgressDrawTarget>,
        what: &'static str,
        noun: &'static str,
        objects_total: Option<u64>,
        bytes_total: u64,
    ) -> Progress {
        let bar = target.map(|target| {
            let style = ProgressStyle::with_template(
                // The text first, the bar in what is left of the line: a line wider than the
                // terminal wraps, and every redraw then costs two rows.
                "{prefix}: {msg}, {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, ETA {eta} [{wide_bar}]",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(Some(bytes_total), target)
                .with_style(style)
                .with_prefix(what);
            *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        let p = Progress {
            bar,
            objects: AtomicU64::new(0),
            objects_total,
            noun,
        };
        p.show_objects(0);
        p
    }

    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// One more object of `bytes` done.
    pub fn inc(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            let done = self.objects.fetch_add(1, Relaxed) + 1;
            self.show_objects(done);
            bar.inc(bytes);
        }
    }

    /// Absolute counts (a drain reads them from its metrics). A total that turns out too small
    /// (gzip files grow when read) grows with the count.
    pub fn set(&self, objects: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            if bar.length().is_some_and(|len| bytes > len) {
                bar.set_length(bytes);
            }
            self.objects.store(objects, Relaxed);
            self.show_objects(objects);
            bar.set_position(bytes);
        }
    }

    pub fn set_bytes_total(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bytes.max(bar.position()));
        }
    }

    fn show_objects(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(objects_message(done, self.objects_total, self.noun));
        }
    }

    /// Clears the bar: what follows on stdout or stderr is the result.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.as_ref().filter(|b| !b.is_finished()) {
            bar.finish_and_clear();
            ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn stdout_is_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata())
        .is_ok_and(|m| m.is_file())
}

/// `12/40 objects checked`, or `12 objects shipped` when the total is not known.
fn objects_message(done: u64, total: Option<u64>, noun: &str) -> String {
    match total {
        Some(total) => format!("{done}/{total} {noun}"),
        None => format!("{done} {noun}"),
    }
}

/// The drain's bar: polls the agent's counters until `done` fires. `bytes_total` is read
/// each time (the reader sets it once it has planned its files).
pub fn follow_drain(
    metrics: Arc<crate::metrics::Metrics>,
    done: tokio::sync::oneshot::Receiver<()>,
) -> Option<tokio::task::JoinHandle<()>> {
    let target = wanted()?;
    Some(tokio::spawn(async move {
        let progress = Progress::with_target(Some(target), "drain", "objects shipped", None, 0);
        let mut done = done;
        loop {
            let total = metrics.drain_bytes_total.load(Relaxed);
            if total > 0 {
                progress.set_bytes_total(total);
            }
            progress.set(
                metrics.objects_shipped.load(Relaxed),
                metrics.bytes_read.load(Relaxed),
            );
            tokio::select! {
                _ = &mut done => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        progress.finish();
    }))
}

/// A terminal stand-in for a pipe: each redraw is `\r` and the line, no escape codes.
#[derive(Debug)]
struct Lines<W: Write + Send + std::fmt::Debug>(Mutex<W>);

impl<W: Write + Send + std::fmt::Debug> TermLike for Lines<W> {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(self.0.lock().unwrap_or_else(|e| e.into_inner()), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(self.0.lock().unwrap_or_else(|e| e.into_inner()), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(self.0.lock().unwrap_or_else(|e| e.into_inner()), "\r")
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Debug, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_bar_shows_objects_bytes_rate_and_eta() {
        let out = Shared::default();
        let target = ProgressDrawTarget::term_like(Box::new(Lines(Mutex::new(out.clone()))));
        let p = Progress::with_target(Some(target), "verify", "objects checked", Some(4), 4096);
        p.inc(1024);
        p.bar.as_ref().unwrap().force_draw();
        let drawn = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let last = drawn.rsplit('\r').find(|l| !l.is_empty()).unwrap();
        assert!(
            last.starts_with("verify: 1/4 objects checked, 1.00 KiB/4.00 KiB, "),
            "{last:?}"
        );
        assert!(last.contains("/s, ETA "), "{last:?}");
        // A quarter of the bar that fills the rest of the line.
        let bar = last.split_once(" [").unwrap().1.trim_end_matches(']');
        let done = bar.chars().take_while(|&c| c == '=').count();
        assert!(
            bar.len() > 8 && done * 4 <= bar.len() && bar.len() <= done * 4 + 8,
            "{last:?}"
        );
        p.finish();
        assert!(ACTIVE.lock().unwrap().is_none());
    }

    #[test]
    fn messages() {
        assert_eq!(
            objects_message(3, Some(10), "objects checked"),
            "3/10 objects checked"
        );
        assert_eq!(
            objects_message(3, None, "objects shipped"),
            "3 objects shipped"
        );
    }

    #[test]
    fn nothing_is_drawn_without_a_target() {
        let p = Progress::with_target(None, "fetch", "objects", Some(2), 10);
        p.inc(5);
        assert!(!p.is_drawn());
    }
}
