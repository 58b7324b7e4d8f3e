//! `report --plot FILE.svg`: memory over time for every attempt on one shared time axis, so the
//! back-off gaps between attempts show, with each attempt's memory request drawn as a plateau
//! while the attempt holds it (what the scheduler reserves, not what it uses) and its limit, if any.
//! The time axis spans the data, in seconds, minutes or hours; an attempt with few samples is
//! drawn as points too, so a short attempt is never invisible.

use std::fmt::Display;
use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::prelude::*;

use super::report::{fmt_bytes_f, fmt_number, Report};
use super::Footprint;

const SIZE: (u32, u32) = (1200, 560);
/// Bounds of the legend column beside the chart (inside the chart a legend hides data); its
/// width follows the longest label at about 7 px a character.
const LEGEND_WIDTH: (u32, u32) = (200, 480);
const LEGEND_ROW: i32 = 20;
const REQUEST_COLOR: RGBColor = RGBColor(214, 39, 40);
const LIMIT_COLOR: RGBColor = RGBColor(127, 127, 127);
/// Attempt colors: the Tableau palette without its red and grey, which mark request and limit.
const ATTEMPT_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Which bound of an attempt a plateau shows.
type Amount = fn(&Footprint) -> Option<u64>;

fn attempt_color(index: usize) -> RGBColor {
    ATTEMPT_COLORS[index % ATTEMPT_COLORS.len()]
}

/// Writes the plot of `report` as an SVG file at `path`.
pub fn render_svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let svg = svg_string(report)?;
    std::fs::write(path, svg)
        .with_context(|| format!("cannot write the plot to {}", path.display()))
}

fn drawing<E: Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e}")
}

/// Up to this many samples an attempt's samples are also drawn as points: one sample makes
/// no line, and a few seconds of samples on an axis of minutes make a line too short to see.
const POINTS_UP_TO: usize = 12;
const POINT_RADIUS: u32 = 4;

fn legend_label(f: &Footprint, many_jobs: bool) -> String {
    let name = if many_jobs {
        format!("{} attempt {}", f.job, f.attempt)
    } else {
        format!("attempt {}", f.attempt)
    };
    let how = match (
        f.exit_code,
        f.reason.as_deref(),
        f.waiting_reason.as_deref(),
    ) {
        (Some(code), Some("OOMKilled"), _) => format!("OOMKilled, exit {code}"),
        (Some(code), _, _) if f.finished.is_some() => format!("exit {code}"),
        (_, Some(reason), _) => reason.to_string(),
        (_, _, Some(waiting)) if f.started.is_none() => waiting.to_string(),
        _ => f.phase.clone().unwrap_or_else(|| "no API data".to_string()),
    };
    let peak = match (f.memory_peak_bytes, f.used_memory_byte_seconds) {
        (Some(p), _) => format!("peak {}", fmt_bytes_f(p as f64)),
        (None, Some(0.0)) => "never ran".to_string(),
        (None, _) => "no usage data".to_string(),
    };
    format!("{name}: {how}, {peak}")
}

/// Chart coordinates: time in seconds, minutes or hours since the origin and memory in KiB, MiB
/// or GiB, whichever fits the data, so that the axis ticks fall on round numbers of that unit.
struct Axes {
    origin: f64,
    time_unit: (&'static str, f64),
    memory_unit: (&'static str, f64),
}

impl Axes {
    fn new(origin: f64, span_seconds: f64, top_bytes: f64) -> Self {
        let time_unit = if span_seconds < 180.0 {
            ("s", 1.0)
        } else if span_seconds < 3.0 * 3600.0 {
            ("min", 60.0)
        } else {
            ("h", 3600.0)
        };
        let memory_unit = [("GiB", 30), ("MiB", 20), ("KiB", 10)]
            .into_iter()
            .map(|(name, shift)| (name, f64::from(1u32 << shift)))
            .find(|(_, size)| top_bytes >= *size)
            .unwrap_or(("KiB", 1024.0));
        Self {
            origin,
            time_unit,
            memory_unit,
        }
    }

    fn point(&self, unix: f64, bytes: f64) -> (f64, f64) {
        (
            (unix - self.origin) / self.time_unit.1,
            bytes / self.memory_unit.1,
        )
    }

    /// `90 s`, `4.5 min`, `12 h`: a tick of the time axis.
    fn time_label(&self, x: f64) -> String {
        format!("{} {}", fmt_number(x), self.time_unit.0)
    }
}

/// An attempt's samples as (time, bytes), each inside the attempt's span when its end was
/// seen (finished or deleted): a backfill (`--drain`) reads the cgroup when it runs, maybe days
/// after the attempt ended, and that sample is drawn at the attempt's end, not days away.
fn samples(f: &Footprint) -> impl Iterator<Item = (f64, u64)> + '_ {
    let span = (f.finished.is_some() || f.deleted.is_some())
        .then(|| f.held_interval())
        .flatten();
    f.samples.iter().map(move |(t, m, _)| match span {
        Some((start, end)) => (t.clamp(start, end), *m),
        None => (*t, *m),
    })
}

/// The memory series of one attempt. An attempt the API shows never ran used nothing: it is
/// drawn at zero across the time it held its request.
fn usage_points(f: &Footprint, axes: &Axes) -> Vec<(f64, f64)> {
    if !f.samples.is_empty() {
        return samples(f).map(|(t, m)| axes.point(t, m as f64)).collect();
    }
    match (f.used_memory_byte_seconds, drawn_interval(f)) {
        (Some(0.0), Some((start, end))) => {
            vec![axes.point(start, 0.0), axes.point(end, 0.0)]
        }
        _ => Vec::new(),
    }
}

/// The time an attempt is drawn over: while it held its requests, else the span of its
/// samples. An attempt that ended unseen by the API (no finish or deletion time) has only the
/// time its footprint was last written as an end, which may be days later (a backfill with
/// `--drain`): once final, its last sample ends it instead.
fn drawn_interval(f: &Footprint) -> Option<(f64, f64)> {
    let times = || samples(f).map(|(t, _)| t);
    let samples = times().reduce(f64::min).zip(times().reduce(f64::max));
    let Some((start, end)) = f.held_interval() else {
        return samples;
    };
    let end_seen = f.finished.is_some() || f.deleted.is_some() || !f.is_final;
    if end_seen {
        return Some((start, end));
    }
    let last = samples.map_or(start, |(_, last)| last);
    Some((start, last.clamp(start, end)))
}

/// The full extent in time of everything drawn: drawn intervals and samples.
fn time_extent(report: &Report) -> Option<(f64, f64)> {
    let times = report.attempts.iter().flat_map(|f| {
        let held = drawn_interval(f).map(|(s, e)| [s, e]).into_iter().flatten();
        held.chain(samples(f).map(|(t, _)| t))
    });
    times.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((lo, hi)) => Some((f64::min(lo, t), f64::max(hi, t))),
    })
}

/// The x range of the chart: the data plus a little room on both sides, so points at either
/// end are not cut in half.
fn x_range(axes: &Axes, origin: f64, end: f64) -> (f64, f64) {
    let span = (end - origin).max(1.0);
    let (lo, _) = axes.point(origin - span * 0.02, 0.0);
    let (hi, _) = axes.point(origin + span * 1.03, 0.0);
    (lo, hi)
}

/// A legend row: label, colour, line width, and whether the series is drawn as points too.
type LegendEntry = (String, RGBColor, u32, bool);

/// One row per entry, as many as fit; the rest summed up in a last row.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: Vec<LegendEntry>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let rows = ((area.dim_in_pixel().1 as i32 - 2 * LEGEND_ROW) / LEGEND_ROW).max(1) as usize;
    let total = entries.len();
    let shown = if total > rows { rows - 1 } else { total };
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (label, color, width, points)) in entries.into_iter().take(shown).enumerate() {
        let y = 2 * LEGEND_ROW + i as i32 * LEGEND_ROW;
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(width),
        ))
        .map_err(drawing)?;
        if points {
            area.draw(&Circle::new((20, y), POINT_RADIUS, color.filled()))
                .map_err(drawing)?;
        }
        area.draw(&Text::new(label, (40, y - 7), font.clone()))
            .map_err(drawing)?;
    }
    if shown < total {
        let y = 2 * LEGEND_ROW + shown as i32 * LEGEND_ROW;
        let more = format!("… and {} more", total - shown);
        area.draw(&Text::new(more, (40, y - 7), font))
            .map_err(drawing)?;
    }
    Ok(())
}

/// The legend column's width: the longest label at about 7 px a character.
fn legend_width(report: &Report) -> u32 {
    let many_jobs = report.jobs.len() > 1;
    let longest = report
        .attempts
        .iter()
        .map(|f| legend_label(f, many_jobs).chars().count())
        .max()
        .unwrap_or(0) as u32;
    (longest * 7 + 56).clamp(LEGEND_WIDTH.0, LEGEND_WIDTH.1)
}

pub(crate) fn svg_string(report: &Report) -> anyhow::Result<String> {
    let many_jobs = report.jobs.len() > 1;
    let (origin, end) = time_extent(report).unwrap_or((0.0, 1.0));
    let y_top = report
        .attempts
        .iter()
        .flat_map(|f| {
            let bounds = [
                f.memory_request_bytes,
                f.memory_limit_bytes,
                f.memory_peak_bytes,
            ];
            bounds
                .into_iter()
                .flatten()
                .chain(f.samples.iter().map(|(_, m, _)| *m))
        })
        .max()
        .unwrap_or(0) as f64;
    let y_top = y_top.max(1024.0 * 1024.0);
    let axes = Axes::new(origin, end - origin, y_top);
    let (x_min, x_max) = x_range(&axes, origin, end);
    let (_, y_max) = axes.point(origin, y_top * 1.15);
    let memory_unit = axes.memory_unit.0;
    let name = report
        .job
        .as_deref()
        .or(report.cronjob.as_deref())
        .unwrap_or("-");
    let title = if report.attempts.is_empty() {
        format!("{name}: no attempts")
    } else {
        format!(
            "{name}: memory per attempt (0 = {})",
            super::format_unix(origin)
        )
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(&title, ("sans-serif", 20)).map_err(drawing)?;
        let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - legend_width(report));
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(x_min..x_max, 0f64..y_max)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("time")
            .y_desc("memory")
            .x_label_formatter(&|x| axes.time_label(*x))
            .y_label_formatter(&|y| format!("{} {memory_unit}", fmt_number(*y)))
            .draw()
            .map_err(drawing)?;

        let mut legend: Vec<LegendEntry> = Vec::new();
        for (i, f) in report.attempts.iter().enumerate() {
            let color = attempt_color(i);
            let points = usage_points(f, &axes);
            let as_points = !f.samples.is_empty() && f.samples.len() <= POINTS_UP_TO;
            if as_points {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|p| Circle::new(*p, POINT_RADIUS, color.filled())),
                    )
                    .map_err(drawing)?;
            }
            if points.len() > 1 {
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(drawing)?;
            }
            legend.push((legend_label(f, many_jobs), color, 2, as_points));
        }

        let bounds: [(&str, RGBColor, Amount); 2] = [
            ("memory request", REQUEST_COLOR, |f| f.memory_request_bytes),
            ("memory limit", LIMIT_COLOR, |f| f.memory_limit_bytes),
        ];
        for (what, color, amount) in bounds {
            let mut drawn = false;
            for f in &report.attempts {
                let Some(value) = amount(f) else {
                    continue;
                };
                // A plateau only while this attempt holds it: gaps between attempts stay empty.
                // An attempt with no time at all shows its request across the whole chart.
                let (start, end) = drawn_interval(f).unwrap_or((origin, end));
                let plateau = vec![
                    axes.point(start, value as f64),
                    axes.point(end, value as f64),
                ];
                chart
                    .draw_series(LineSeries::new(plateau, color.stroke_width(3)))
                    .map_err(drawing)?;
                drawn = true;
            }
            if drawn {
                legend.push((what.to_string(), color, 3, false));
            }
        }
        draw_legend(&legend_area, legend)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::super::report::build_report;
    use super::super::report::seeds::*;
    use super::*;

    /// An element of a parsed document: its name, attributes and direct text.
    #[derive(Debug, Default)]
    struct Element {
        name: String,
        attributes: Vec<(String, String)>,
        text: String,
    }

    impl Element {
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn parse_attributes(mut rest: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                return Ok(out);
            }
            let (name, after) = rest
                .split_once('=')
                .ok_or(format!("attribute in {rest:?}"))?;
            let after = after.trim_start();
            let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'');
            let quote = quote.ok_or(format!("unquoted value of {name}"))?;
            let end = after[1..]
                .find(quote)
                .ok_or(format!("unterminated {name}"))?;
            out.push((name.trim().to_string(), after[1..1 + end].to_string()));
            rest = &after[end + 2..];
        }
    }

    /// A small well-formedness check (tags nest and close, attributes are quoted, one root,
    /// entities are known) that also collects the elements in document order; enough to read
    /// the SVG plotters writes without another dependency.
    fn parse_xml(doc: &str) -> Result<Vec<Element>, String> {
        let mut elements: Vec<Element> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut roots = 0;
        let mut rest = doc;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
                let known = ["&lt;", "&gt;", "&amp;", "&quot;", "&apos;"].contains(&entity)
                    || entity.starts_with("&#");
                if !known {
                    return Err(format!("unknown entity {entity:?}"));
                }
            }
            match open.last() {
                Some(&top) => elements[top].text.push_str(text),
                None if !text.trim().is_empty() => {
                    return Err(format!("text outside the root: {text:?}"))
                }
                None => {}
            }
            rest = &rest[lt..];
            let (end_marker, skip) = if rest.starts_with("<!--") {
                ("-->", true)
            } else if rest.starts_with("<?") {
                ("?>", true)
            } else if rest.starts_with("<!") {
                (">", true)
            } else {
                (">", false)
            };
            let gt = rest.find(end_marker).ok_or("unterminated markup")?;
            let tag = &rest[1..gt];
            rest = &rest[gt + end_marker.len()..];
            if skip {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = open.pop().ok_or(format!("</{name}> closes nothing"))?;
                if elements[top].name != name.trim() {
                    return Err(format!("</{name}> closes <{}>", elements[top].name));
                }
                continue;
            }
            let (tag, self_closing) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let (name, attributes) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
            if open.is_empty() {
                roots += 1;
            }
            elements.push(Element {
                name: name.to_string(),
                attributes: parse_attributes(attributes)?,
                text: String::new(),
            });
            if !self_closing {
                open.push(elements.len() - 1);
            }
        }
        if !open.is_empty() || roots != 1 || !rest.trim().is_empty() {
            return Err(format!("{} unclosed, {roots} roots", open.len()));
        }
        Ok(elements)
    }

    #[test]
    fn the_checker_rejects_broken_documents() {
        assert!(parse_xml("<svg><g></g></svg>").is_ok());
        assert!(
            parse_xml("<?xml version=\"1.0\"?><svg a='1'><text>x &amp; y</text></svg>").is_ok()
        );
        for broken in [
            "<svg><g></svg>",
            "<svg>",
            "<svg></svg><svg></svg>",
            "<svg a=1></svg>",
            "<svg>&nbsp;</svg>",
            "</svg>",
        ] {
            assert!(parse_xml(broken).is_err(), "{broken}");
        }
    }

    /// The polylines drawn in `color` (plotters writes `stroke="#RRGGBB"`).
    fn polylines(doc: &[Element], color: RGBColor) -> Vec<&Element> {
        let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
        doc.iter()
            .filter(|e| e.name == "polyline")
            .filter(|e| {
                e.attribute("stroke")
                    .is_some_and(|s| s.eq_ignore_ascii_case(&hex))
            })
            .collect()
    }

    fn texts(doc: &[Element]) -> Vec<String> {
        doc.iter()
            .filter(|e| e.name == "text")
            .map(|e| e.text.trim().to_string())
            .collect()
    }

    #[test]
    fn exit_nonzero_plot_has_one_series_per_attempt_and_request_plateaus() {
        let tmp = tempfile::tempdir().unwrap();
        let report = build_report(exit_nonzero(tmp.path()), 20);
        let path = tmp.path().join("exit-nonzero.svg");
        render_svg(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let doc = parse_xml(&svg).expect("well-formed SVG");
        assert_eq!(doc[0].name, "svg");

        let labels = texts(&doc);
        for n in 1..=6 {
            assert!(
                labels
                    .iter()
                    .any(|t| t.starts_with(&format!("attempt {n}: exit 1, peak "))),
                "legend of attempt {n}: {labels:?}"
            );
        }
        assert_eq!(labels.iter().filter(|t| *t == "memory request").count(), 1);
        assert!(
            !labels.iter().any(|t| t == "memory limit"),
            "no limits were set"
        );
        assert!(labels
            .iter()
            .any(|t| t.starts_with("exit-nonzero: memory per attempt (0 = 2026-11-27T14:40:00Z)")));

        for (i, f) in report.attempts.iter().enumerate() {
            let lines = polylines(&doc, attempt_color(i));
            // The series, and its legend sample.
            assert_eq!(lines.len(), 2, "attempt {}", f.attempt);
            let points = lines[0]
                .attribute("points")
                .unwrap()
                .split_whitespace()
                .count();
            assert_eq!(points, f.samples.len());
        }
        // Six plateaus at the request, each as wide as its attempt's hold, apart from each other,
        // plus the legend sample.
        let requests = polylines(&doc, REQUEST_COLOR);
        assert_eq!(requests.len(), 7);
        let ys: Vec<&str> = requests[..6]
            .iter()
            .map(|n| {
                let pts: Vec<&str> = n.attribute("points").unwrap().split_whitespace().collect();
                assert_eq!(pts.len(), 2);
                let (y0, y1) = (
                    pts[0].split(',').nth(1).unwrap(),
                    pts[1].split(',').nth(1).unwrap(),
                );
                assert_eq!(y0, y1, "a level line");
                y0
            })
            .collect();
        assert!(ys.windows(2).all(|w| w[0] == w[1]), "all at 1 GiB");
    }

    #[test]
    fn a_never_running_attempt_is_a_flat_line_under_its_request() {
        let tmp = tempfile::tempdir().unwrap();
        let report = build_report(invalid_secret(tmp.path()), 20);
        let svg = svg_string(&report).unwrap();
        let doc = parse_xml(&svg).unwrap();
        let labels = texts(&doc);
        assert!(
            labels
                .iter()
                .any(|t| t == "attempt 1: CreateContainerConfigError, never ran"),
            "{labels:?}"
        );
        assert_eq!(polylines(&doc, attempt_color(0)).len(), 2);
        assert_eq!(polylines(&doc, REQUEST_COLOR).len(), 2);
    }

    #[test]
    fn over_provisioned_plot_scales_to_the_request() {
        let tmp = tempfile::tempdir().unwrap();
        let report = build_report(over_provisioned(tmp.path()), 20);
        let svg = svg_string(&report).unwrap();
        let doc = parse_xml(&svg).unwrap();
        let labels = texts(&doc);
        assert!(
            labels.iter().any(|t| t == "attempt 1: Running, peak 1 GiB"),
            "{labels:?}"
        );
        assert!(
            labels.iter().any(|t| t == "2 GiB"),
            "y axis in GiB: {labels:?}"
        );
        assert!(
            labels.iter().any(|t| t == "1.5 GiB"),
            "y axis in GiB: {labels:?}"
        );
        assert!(
            labels.iter().any(|t| t == "10 min"),
            "x axis in minutes: {labels:?}"
        );
    }

    #[test]
    fn empty_reports_and_bad_paths() {
        let report = build_report(Vec::new(), 20);
        let svg = svg_string(&report).unwrap();
        parse_xml(&svg).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let err = render_svg(&report, &tmp.path().join("missing/dir/plot.svg")).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot write the plot to "),
            "{err}"
        );
    }

    #[test]
    fn legend_labels_say_how_each_attempt_ended() {
        let oom = Footprint {
            job: "cron-fail-29929855".into(),
            attempt: 2,
            exit_code: Some(137),
            reason: Some("OOMKilled".into()),
            finished: Some("2026-11-27T14:54:00Z".into()),
            memory_peak_bytes: Some(512 << 20),
            ..Footprint::default()
        };
        assert_eq!(
            legend_label(&oom, false),
            "attempt 2: OOMKilled, exit 137, peak 512 MiB"
        );
        assert_eq!(
            legend_label(&oom, true),
            "cron-fail-29929855 attempt 2: OOMKilled, exit 137, peak 512 MiB"
        );
        let unknown = Footprint {
            attempt: 1,
            ..Footprint::default()
        };
        assert_eq!(
            legend_label(&unknown, false),
            "attempt 1: no API data, no usage data"
        );
    }

    const T0: &str = "2026-11-27T14:40:00Z";
    const GIB: u64 = 1 << 30;

    /// Six attempts a minute apart that last seconds, as the demo's: one or two samples each,
    /// no finish time (no API), the footprints written ten days later by a backfill.
    fn short_attempts() -> Report {
        let t0 = super::super::parse_unix(T0).unwrap();
        let attempts = (0..6u32)
            .map(|i| {
                let start = t0 + 60.0 * f64::from(i);
                let samples: Vec<(f64, u64, f64)> = if i == 0 {
                    vec![(start + 1.0, 300 << 20, 0.1)]
                } else {
                    vec![
                        (start + 1.0, (300 + 20 * u64::from(i)) << 20, 0.1),
                        (start + 3.0, (310 + 20 * u64::from(i)) << 20, 0.2),
                    ]
                };
                Footprint {
                    job: "exit-nonzero".into(),
                    namespace: "default".into(),
                    attempt: i + 1,
                    started: Some(super::super::format_unix(start)),
                    updated: Some(super::super::format_unix(t0 + 10.0 * 86_400.0)),
                    is_final: true,
                    memory_request_bytes: Some(GIB),
                    memory_peak_bytes: samples.iter().map(|s| s.1).max(),
                    samples,
                    ..Footprint::default()
                }
            })
            .collect();
        build_report(attempts, 20)
    }

    /// The tick labels of the time axis (`N s`, `N min`, `N h`).
    fn time_ticks(doc: &[Element]) -> Vec<(f64, String)> {
        texts(doc)
            .into_iter()
            .filter_map(|t| {
                let (n, unit) = t.split_once(' ')?;
                let n: f64 = n.parse().ok()?;
                ["s", "min", "h"]
                    .contains(&unit)
                    .then(|| (n, unit.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_time_axis_spans_the_data_in_fitting_units() {
        let unit = |span: f64| Axes::new(0.0, span, GIB as f64).time_unit.0;
        assert_eq!(unit(30.0), "s");
        assert_eq!(unit(179.0), "s");
        assert_eq!(unit(360.0), "min");
        assert_eq!(unit(2.0 * 3600.0), "min");
        assert_eq!(unit(5.0 * 3600.0), "h");
        assert_eq!(Axes::new(0.0, 360.0, 1.0).time_label(4.5), "4.5 min");

        // The backfill's late `updated` is no end: the last sample ends a final attempt.
        let report = short_attempts();
        let t0 = super::super::parse_unix(T0).unwrap();
        assert_eq!(time_extent(&report), Some((t0, t0 + 303.0)));
        let svg = svg_string(&report).unwrap();
        let ticks = time_ticks(&parse_xml(&svg).unwrap());
        assert!(ticks.len() >= 4, "{ticks:?}");
        assert!(ticks.iter().all(|(_, u)| u == "min"), "{ticks:?}");
        let last = ticks.iter().map(|(n, _)| *n).fold(f64::MIN, f64::max);
        assert!(
            (5.0..=6.2).contains(&last),
            "axis ends near 5 min 3 s: {ticks:?}"
        );

        // Without the API, a drain's one sample per attempt is read when it runs, days after
        // the attempts' log lines: each is drawn at its attempt's end.
        let mut drained = short_attempts();
        for f in &mut drained.attempts {
            let start = super::super::parse_unix(f.started.as_deref().unwrap()).unwrap();
            f.finished = Some(super::super::format_unix(start + 30.0));
            f.is_final = false;
            f.samples = vec![(t0 + 10.0 * 86_400.0, 300 << 20, 1.5)];
        }
        assert_eq!(time_extent(&drained), Some((t0, t0 + 330.0)));
        let axes = Axes::new(t0, 330.0, GIB as f64);
        assert_eq!(
            usage_points(&drained.attempts[1], &axes),
            [(1.5, 300.0 / 1024.0)]
        );

        // A live attempt does end at its last update.
        let mut live = short_attempts();
        live.attempts[5].is_final = false;
        live.attempts[5].updated = Some(super::super::format_unix(t0 + 2.0 * 3600.0));
        assert_eq!(time_extent(&live), Some((t0, t0 + 7200.0)));
    }

    /// Pixels of the rendered plot left of the legend column whose colour is `color`.
    fn pixels_of(report: &Report, pixmap: &resvg::tiny_skia::Pixmap, color: RGBColor) -> usize {
        let width = pixmap.width() as usize;
        let plot_width = (SIZE.0 - legend_width(report)) as usize;
        pixmap
            .pixels()
            .iter()
            .enumerate()
            .filter(|(i, _)| i % width < plot_width)
            .filter(|(_, p)| (p.red(), p.green(), p.blue()) == (color.0, color.1, color.2))
            .count()
    }

    fn render(svg: &str) -> resvg::tiny_skia::Pixmap {
        let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).unwrap();
        let size = tree.size().to_int_size();
        assert_eq!((size.width(), size.height()), SIZE);
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(&tree, Default::default(), &mut pixmap.as_mut());
        pixmap
    }

    #[test]
    fn every_attempt_shows_in_the_rendered_pixels() {
        let report = short_attempts();
        let pixmap = render(&svg_string(&report).unwrap());
        if let Ok(dir) = std::env::var("JOBARCHIVE_PLOT_DIR") {
            // To look at: the SVG (with text), and the pixels this renderer made (no fonts).
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join("short-attempts.svg"), svg_string(&report).unwrap()).unwrap();
            pixmap.save_png(dir.join("short-attempts.png")).unwrap();
        }
        for (i, f) in report.attempts.iter().enumerate() {
            let n = pixels_of(&report, &pixmap, attempt_color(i));
            // A point of radius 4 is about 50 pixels; a line adds more.
            assert!(n >= 20, "attempt {}: {n} pixels of its colour", f.attempt);
        }
        // Six short plateaus: each attempt held its request from its start to its last sample.
        let request = pixels_of(&report, &pixmap, REQUEST_COLOR);
        assert!(request >= 30, "the request lines: {request} pixels");

        // The seed study's exit-nonzero, with API data and more samples: lines and plateaus.
        let tmp = tempfile::tempdir().unwrap();
        let report = build_report(exit_nonzero(tmp.path()), 20);
        let pixmap = render(&svg_string(&report).unwrap());
        for i in 0..report.attempts.len() {
            assert!(
                pixels_of(&report, &pixmap, attempt_color(i)) >= 20,
                "attempt {}",
                i + 1
            );
        }
    }

    #[test]
    fn a_request_without_a_time_is_drawn_across_the_chart() {
        let mut report = short_attempts();
        for f in &mut report.attempts {
            f.started = None;
            f.updated = None;
        }
        // Held intervals unknown: each request spans its attempt's samples.
        let doc = parse_xml(&svg_string(&report).unwrap()).unwrap();
        assert_eq!(polylines(&doc, REQUEST_COLOR).len(), 7);
        // No sample and no time at all: across the whole chart.
        let bare = build_report(
            vec![Footprint {
                attempt: 1,
                memory_request_bytes: Some(GIB),
                ..Footprint::default()
            }],
            20,
        );
        let doc = parse_xml(&svg_string(&bare).unwrap()).unwrap();
        assert_eq!(polylines(&doc, REQUEST_COLOR).len(), 2);
    }
}
