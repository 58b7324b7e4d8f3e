//! Microbenchmarks of the stages every log byte goes through: parse (CRI, docker json-file),
//! encode (record → NDJSON line with the stream's metadata), and whole-batch gzip with the
//! shipped compressor beside flate2's zlib-rs backend at the same levels.
//!
//! `cargo bench -p jobarchive --bench hot_path`; figures are bytes of input per second.
//! The input is a deterministic 4 MiB mix like `bench/gen_corpus.py`'s (Python logging, logfmt,
//! JSON, progress bars; 10 % stderr; a few 40 KiB lines split into 16 KiB `P` chunks).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jobarchive::contract::StreamMeta;
use jobarchive::encode::Encoder;
use jobarchive::parse::{Format, Parser};
use std::hint::black_box;
use std::io::{Read, Write};

const INPUT_BYTES: usize = 4 << 20;
const MAX_LINE: usize = 1 << 20;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn message(rng: &mut Rng) -> String {
    let n = rng.below(100_000);
    match rng.below(4) {
        0 => format!(
            "2026-11-27 13:07:{:02},{:03} INFO worker.process: processed batch {n} rows={} elapsed_ms={}",
            rng.below(60),
            rng.below(1000),
            rng.below(50_000),
            rng.below(9000)
        ),
        1 => format!(
            "time=2026-11-27T13:07:39Z level=info msg=\"fetched shard\" shard={n} bytes={} retries={}",
            rng.below(1 << 30),
            rng.below(4)
        ),
        2 => format!(
            "{{\"level\":\"info\",\"event\":\"step\",\"step\":{n},\"loss\":0.{:05},\"lr\":6.29e-{},\"user_id\":{}}}",
            rng.below(100_000),
            rng.below(9),
            rng.below(1000)
        ),
        _ => format!(
            "Epoch {}:  {}%|████▏      | {n}/500000 [14:50<10:32, 17.{:02}it/s, loss=0.{:04}]",
            rng.below(20),
            rng.below(100),
            rng.below(100),
            rng.below(10_000)
        ),
    }
}

fn timestamp(i: usize) -> String {
    format!(
        "2026-11-27T13:{:02}:{:02}.{:09}Z",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i * 7919 % 1_000_000_000
    )
}

/// CRI lines (`<ts> <stream> <P|F> <text>\n`), about `INPUT_BYTES` of them.
fn cri_input() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(INPUT_BYTES + 70_000);
    let mut i = 0;
    while out.len() < INPUT_BYTES {
        let ts = timestamp(i);
        let stream = if rng.below(10) == 0 {
            "stderr"
        } else {
            "stdout"
        };
        if rng.below(2000) == 0 {
            let long: String = (0..40 << 10)
                .map(|k| (b'a' + (k % 26) as u8) as char)
                .collect();
            for chunk in long.as_bytes().chunks(16 << 10) {
                out.extend_from_slice(format!("{ts} {stream} P ").as_bytes());
                out.extend_from_slice(chunk);
                out.push(b'\n');
            }
            writeln!(out, "{ts} {stream} F").unwrap();
        } else {
            writeln!(out, "{ts} {stream} F {}", message(&mut rng)).unwrap();
        }
        i += 1;
    }
    out
}

/// The same messages as docker json-file lines.
fn docker_input() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(INPUT_BYTES + 1000);
    let mut i = 0;
    while out.len() < INPUT_BYTES {
        let entry = serde_json::json!({
            "log": format!("{}\n", message(&mut rng)),
            "stream": "stdout",
            "time": timestamp(i),
        });
        serde_json::to_writer(&mut out, &entry).unwrap();
        out.push(b'\n');
        i += 1;
    }
    out
}

fn meta() -> StreamMeta {
    StreamMeta {
        cluster: "prod-eu-1".into(),
        node: "ip-10-0-12-34.eu-west-1.compute.internal".into(),
        namespace: "batch".into(),
        pod: "nightly-report-29929854-x7k2p".into(),
        pod_uid: "b356eab2-2536-489c-a614-853201e6065b".into(),
        container: "main".into(),
        restart: 0,
        job: "nightly-report-29929854".into(),
        job_uid: Some("0b6c8d5e-1f7a-4c1e-9a0e-3d9f2e8b7c61".into()),
        cronjob: Some("nightly-report".into()),
        attempt: 1,
        completion_index: None,
    }
}

/// Feed every physical line of `input` to a parser; with an encoder, encode each record.
fn run(input: &[u8], format: Format, encoder: Option<(&Encoder, &mut Vec<u8>)>) -> u64 {
    let mut parser = Parser::new(format, MAX_LINE);
    let mut records = 0u64;
    let mut offset = 0u64;
    let (enc, out) = match encoder {
        Some((e, o)) => (Some(e), Some(o)),
        None => (None, None),
    };
    let mut out = out;
    for line in memchr::memchr_iter(b'\n', input).scan(0usize, |start, end| {
        let line = &input[*start..end];
        *start = end + 1;
        Some(line)
    }) {
        if let Ok(Some(rec)) = parser.push(line, offset, false) {
            records += 1;
            if let (Some(enc), Some(out)) = (enc, out.as_deref_mut()) {
                enc.encode(&rec, out);
            }
        }
        offset += line.len() as u64 + 1;
    }
    records
}

fn parse(c: &mut Criterion) {
    let cri = cri_input();
    let docker = docker_input();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(cri.len() as u64));
    g.bench_function("cri", |b| {
        b.iter(|| run(black_box(&cri), Format::Cri, None))
    });
    g.throughput(Throughput::Bytes(docker.len() as u64));
    g.bench_function("docker", |b| {
        b.iter(|| run(black_box(&docker), Format::DockerJson, None))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let cri = cri_input();
    let enc = Encoder::new(&meta());
    let mut out = Vec::with_capacity(4 * cri.len());
    let mut g = c.benchmark_group("parse+encode");
    g.throughput(Throughput::Bytes(cri.len() as u64));
    g.bench_function("cri", |b| {
        b.iter(|| {
            out.clear();
            run(black_box(&cri), Format::Cri, Some((&enc, &mut out)))
        })
    });
    g.finish();
}

/// One encoded batch of the default size (4 MiB of NDJSON); `JOBARCHIVE_BENCH_BATCH` names an
/// uncompressed batch to use instead (e.g. `zcat` of an object the agent wrote from a corpus).
fn encoded_batch() -> Vec<u8> {
    if let Ok(path) = std::env::var("JOBARCHIVE_BENCH_BATCH") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let cri = cri_input();
    let mut out = Vec::new();
    run(&cri, Format::Cri, Some((&Encoder::new(&meta()), &mut out)));
    out.truncate(4 << 20);
    out
}

fn flate2_gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn compress(c: &mut Criterion) {
    let batch = encoded_batch();
    let mut g = c.benchmark_group("gzip 4 MiB batch");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.sample_size(20);
    for level in [1, 6] {
        let shipped = jobarchive::compress::gzip(&batch, level);
        let zlib_rs = flate2_gzip(&batch, level);
        eprintln!(
            "level {level}: shipped compressor {} bytes ({:.1}x), flate2/zlib-rs {} bytes ({:.1}x)",
            shipped.len(),
            batch.len() as f64 / shipped.len() as f64,
            zlib_rs.len(),
            batch.len() as f64 / zlib_rs.len() as f64
        );
        g.bench_function(format!("shipped level {level}"), |b| {
            b.iter(|| jobarchive::compress::gzip(black_box(&batch), level))
        });
        g.bench_function(format!("flate2 zlib-rs level {level}"), |b| {
            b.iter(|| flate2_gzip(black_box(&batch), level))
        });
    }
    g.finish();
}

/// The reading side of `fetch`: a shipped object back to records.
fn read_back(c: &mut Criterion) {
    let batch = encoded_batch();
    let gz = jobarchive::compress::gzip(&batch, 1);
    let mut g = c.benchmark_group("fetch: 4 MiB batch");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.sample_size(20);
    let mut body = Vec::new();
    g.bench_function("gunzip shipped (libdeflate one-shot)", |b| {
        b.iter(|| jobarchive::inflate::gunzip(black_box(&gz), &mut body).unwrap())
    });
    g.bench_function("gunzip flate2 zlib-rs stream", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(black_box(&gz[..]))
                .read_to_end(&mut out)
                .unwrap()
        })
    });
    let lines = || batch.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    g.bench_function("decode records (shipped)", |b| {
        b.iter(|| {
            lines()
                .filter(|l| jobarchive::decode::record(l).is_ok())
                .count()
        })
    });
    g.bench_function("decode records (serde_json derive)", |b| {
        b.iter(|| {
            lines()
                .filter(|l| serde_json::from_slice::<jobarchive::contract::RecordRead>(l).is_ok())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, encode, compress, read_back);
criterion_main!(benches);
