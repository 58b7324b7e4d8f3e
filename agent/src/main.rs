//! The `jobarchive` binary: parse the command line, set up logging, run, map errors to the
//! exit codes of CONTRACT §1 with one line on stderr.

use clap::Parser;
use jobarchive::cli::{run, Cli, Command};
use jobarchive::config::LogFormat;
use jobarchive::progress;
use std::io::{IsTerminal, Write};
use tracing_subscriber::EnvFilter;

fn main() {
    tune_allocator();
    raise_open_file_limit();
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobarchive: error: cannot start runtime: {e}");
            std::process::exit(2);
        }
    };
    let result = rt.block_on(run(cli));
    // Do not wait for lingering blocking tasks (e.g. a slow store read) once the answer is out.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("jobarchive: error: {e}");
        std::process::exit(e.code as i32);
    }
}

/// Batches are a few MiB each. glibc would raise its mmap threshold after the first one is freed
/// and keep later ones in per-thread arenas, so freed batches would stay in the RSS; a fixed
/// threshold returns them to the kernel, and two arenas suffice for this process.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The agent holds every followed log file open (that is what keeps a deleted pod's lines
/// readable), so a busy node needs more descriptors than the soft limit of 1024 that container
/// runtimes commonly set; the hard limit is ours to use.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn init_logging(cli: &Cli) {
    // kube-client and kube-runtime's watcher log every failed request and retry; the agent
    // reports API trouble itself, once per change of state (meta::kube::health).
    let default = match cli.command {
        Command::Agent(_) => "info,kube_client=off,kube_runtime=off",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("JOBARCHIVE_LOG_FORMAT").is_ok_and(|v| v == "json")
        || matches!(&cli.command, Command::Agent(a) if a.config().is_ok_and(|c| c.log_format == LogFormat::Json));
    // Colour only on a terminal: under a DaemonSet stderr is a pipe, and escape codes would
    // end up in `kubectl logs` and in log pipelines.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| StderrLine(Vec::new()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// One log line for stderr, written whole when dropped, with a progress bar (if one is drawn)
/// lifted out of its way so the two do not tear each other.
struct StderrLine(Vec<u8>);

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            progress::suspend(|| {
                let _ = std::io::stderr().lock().write_all(&self.0);
            });
        }
    }
}
