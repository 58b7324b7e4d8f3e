//! The agent's HTTP endpoints: `/healthz` (the reading loop is turning), `/readyz` (the store
//! answers and the API metadata is synced), `/metrics` (Prometheus text format).

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::retry::Backoff;
use crate::store::{PutClass, PutCounters, Store};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The follower must turn at least this often to be healthy (it wakes at least every second).
const STALL: Duration = Duration::from_secs(60);

const ACCEPT_PAUSE: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));

pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub store: Arc<Store>,
    pub synced: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Bind first (so a bad address is a startup error), then serve in the background.
pub async fn start(listen: &str, state: Arc<HttpState>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut pause = ACCEPT_PAUSE;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    pause.reset();
                    stream
                }
                // Out of descriptors (EMFILE) and the like: retrying at once would spin a core
                // until one frees up. Wait, longer each time.
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(pause.next_wait()).await;
                    continue;
                }
            };
            let st = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(route(&st, req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn route(st: &HttpState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => healthz(st),
        "/readyz" => readyz(st).await,
        "/metrics" => {
            let mut body = render_metrics(&st.metrics);
            render_puts(&mut body, st.store.puts());
            text(StatusCode::OK, body)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

fn healthz(st: &HttpState) -> Response<Full<Bytes>> {
    let beat = st.metrics.heartbeat_unix_ms.load(Relaxed);
    let age = now_ms().saturating_sub(beat);
    if beat > 0 && age <= STALL.as_millis() as u64 {
        text(StatusCode::OK, "ok\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading loop stalled for {} s\n", age / 1000),
        )
    }
}

async fn readyz(st: &HttpState) -> Response<Full<Bytes>> {
    if !(st.synced)() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "kubernetes metadata not synced yet\n".into(),
        );
    }
    match tokio::time::timeout(Duration::from_secs(5), st.store.check()).await {
        Ok(Ok(())) => text(StatusCode::OK, "ok\n".into()),
        Ok(Err(e)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "store: no answer within 5 s\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// PUT requests and bytes by class (logs, manifests, footprints, other): what the store bills.
/// One label with a fixed set of values, so cardinality stays fixed.
pub fn render_puts(out: &mut String, puts: &PutCounters) {
    let series = [
        (
            "jobarchive_store_puts_total",
            "PUT requests sent to the store, failed ones included, by what they write.",
            0,
        ),
        (
            "jobarchive_store_put_bytes_total",
            "Bytes of PUT request bodies sent to the store, by what they write.",
            1,
        ),
    ];
    for (name, help, which) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for class in PutClass::ALL {
            let counts = puts.get(class);
            let value = if which == 0 { counts.0 } else { counts.1 };
            let _ = writeln!(out, "{name}{{class=\"{}\"}} {value}", class.label());
        }
    }
}

/// Prometheus exposition format; every series is a plain counter or gauge (without labels but
/// for the PUT class), so cardinality stays fixed whatever the node runs.
pub fn render_metrics(m: &Metrics) -> String {
    let lag = match m.oldest_unshipped_unix_ms.load(Relaxed) {
        0 => 0.0,
        t => now_ms().saturating_sub(t) as f64 / 1000.0,
    };
    let rows: [(&str, &str, &str, f64); 24] = [
        (
            "jobarchive_read_bytes_total",
            "counter",
            "Bytes read from container log files.",
            m.bytes_read.load(Relaxed) as f64,
        ),
        (
            "jobarchive_read_lines_total",
            "counter",
            "Physical log lines read.",
            m.lines_read.load(Relaxed) as f64,
        ),
        (
            "jobarchive_parse_errors_total",
            "counter",
            "Malformed log lines skipped.",
            m.parse_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_batches_squeezed_total",
            "counter",
            "Open batches compressed in memory to stay under the open-batch budget.",
            m.batches_squeezed.load(Relaxed) as f64,
        ),
        (
            "jobarchive_read_errors_total",
            "counter",
            "Log file open or read failures.",
            m.read_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_shipped_records_total",
            "counter",
            "Records that landed in the store.",
            m.records_shipped.load(Relaxed) as f64,
        ),
        (
            "jobarchive_shipped_objects_total",
            "counter",
            "Log objects that landed in the store.",
            m.objects_shipped.load(Relaxed) as f64,
        ),
        (
            "jobarchive_shipped_bytes_total",
            "counter",
            "Compressed bytes of log objects that landed.",
            m.bytes_shipped.load(Relaxed) as f64,
        ),
        (
            "jobarchive_upload_errors_total",
            "counter",
            "Failed store writes (each is retried).",
            m.upload_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_state_errors_total",
            "counter",
            "Failed checkpoint writes.",
            m.state_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_footprints_written_total",
            "counter",
            "Footprint documents written to the store.",
            m.footprints_written.load(Relaxed) as f64,
        ),
        (
            "jobarchive_footprint_errors_total",
            "counter",
            "Footprint writes that failed (retried on the next pass).",
            m.footprint_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_events_written_total",
            "counter",
            "Objects of attempts' Kubernetes Events written to the store (only when the set changed).",
            m.events_written.load(Relaxed) as f64,
        ),
        (
            "jobarchive_job_records_written_total",
            "counter",
            "Job records written to the store (only when the merged record changed).",
            m.job_records_written.load(Relaxed) as f64,
        ),
        (
            "jobarchive_postmortem_api_requests_total",
            "counter",
            "Kubernetes API requests for post-mortem records (Event lists, Job reads).",
            m.postmortem_requests.load(Relaxed) as f64,
        ),
        (
            "jobarchive_postmortem_errors_total",
            "counter",
            "Failed API requests and store writes of post-mortem records (retried).",
            m.postmortem_errors.load(Relaxed) as f64,
        ),
        (
            "jobarchive_files_open",
            "gauge",
            "Log files held open.",
            m.files_open.load(Relaxed) as f64,
        ),
        (
            "jobarchive_pods_tracked",
            "gauge",
            "Pods with streams being followed.",
            m.pods_tracked.load(Relaxed) as f64,
        ),
        (
            "jobarchive_streams_tracked",
            "gauge",
            "Container streams being followed.",
            m.streams_tracked.load(Relaxed) as f64,
        ),
        (
            "jobarchive_pods_pinned",
            "gauge",
            "Pods whose metadata the reader holds.",
            m.pods_pinned.load(Relaxed) as f64,
        ),
        (
            "jobarchive_pod_states",
            "gauge",
            "Pods whose manifest and checkpoints the shipper holds.",
            m.pod_states.load(Relaxed) as f64,
        ),
        (
            "jobarchive_spool_bytes",
            "gauge",
            "Compressed bytes waiting in the spool for the store.",
            m.spool_bytes.load(Relaxed) as f64,
        ),
        (
            "jobarchive_spool_batches",
            "gauge",
            "Batches waiting in the spool for the store.",
            m.spool_batches.load(Relaxed) as f64,
        ),
        (
            "jobarchive_oldest_unshipped_seconds",
            "gauge",
            "Age of the oldest record read but not yet shipped (shipping lag).",
            lag,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}
