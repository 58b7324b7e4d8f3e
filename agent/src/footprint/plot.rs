//! `report --plot FILE.svg`: memory over time for every attempt on one shared time axis, so the
//! back-off gaps between attempts show, with each attempt's memory request drawn as a plateau
//! while the attempt holds it (what the scheduler reserves, not what it uses) and its limit, if any.

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

/// "mm:ss" (or "h:mm:ss") since the time origin.
fn fmt_clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

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
    time_unit: f64,
    memory_unit: (&'static str, f64),
}

impl Axes {
    fn new(origin: f64, span_seconds: f64, top_bytes: f64) -> Self {
        let time_unit = if span_seconds < 180.0 {
            1.0
        } else if span_seconds < 3.0 * 3600.0 {
            60.0
        } else {
            3600.0
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
            (unix - self.origin) / self.time_unit,
            bytes / self.memory_unit.1,
        )
    }
}

/// The memory series of one attempt. An attempt the API shows never ran used nothing: it is
/// drawn at zero across the time it held its request.
fn usage_points(f: &Footprint, axes: &Axes) -> Vec<(f64, f64)> {
    if !f.samples.is_empty() {
        return f
            .samples
            .iter()
            .map(|(t, m, _)| axes.point(*t, *m as f64))
            .collect();
    }
    match (f.used_memory_byte_seconds, f.held_interval()) {
        (Some(0.0), Some((start, end))) => {
            vec![axes.point(start, 0.0), axes.point(end, 0.0)]
        }
        _ => Vec::new(),
    }
}

/// The full extent in time of everything drawn: held intervals and samples.
fn time_extent(report: &Report) -> Option<(f64, f64)> {
    let times = report.attempts.iter().flat_map(|f| {
        let held = f.held_interval().map(|(s, e)| [s, e]).into_iter().flatten();
        held.chain(f.samples.iter().map(|(t, _, _)| *t))
    });
    times.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((lo, hi)) => Some((f64::min(lo, t), f64::max(hi, t))),
    })
}

/// One row per entry, as many as fit; the rest summed up in a last row.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: Vec<(String, RGBColor, u32)>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let rows = ((area.dim_in_pixel().1 as i32 - 2 * LEGEND_ROW) / LEGEND_ROW).max(1) as usize;
    let total = entries.len();
    let shown = if total > rows { rows - 1 } else { total };
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (label, color, width)) in entries.into_iter().take(shown).enumerate() {
        let y = 2 * LEGEND_ROW + i as i32 * LEGEND_ROW;
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(width),
        ))
        .map_err(drawing)?;
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
    let (x_max, y_max) = axes.point(origin + (end - origin).max(1.0) * 1.03, y_top * 1.15);
    let (memory_unit, time_unit) = (axes.memory_unit.0, axes.time_unit);
    let name = report
        .job
        .as_deref()
        .or(report.cronjob.as_deref())
        .unwrap_or("-");
    let title = if report.attempts.is_empty() {
        format!("{name}: no attempts")
    } else {
        format!(
            "{name}: memory per attempt (0:00 = {})",
            super::format_unix(origin)
        )
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(&title, ("sans-serif", 20)).map_err(drawing)?;
        let longest = report
            .attempts
            .iter()
            .map(|f| legend_label(f, many_jobs).chars().count())
            .max()
            .unwrap_or(0) as u32;
        let legend_width = (longest * 7 + 56).clamp(LEGEND_WIDTH.0, LEGEND_WIDTH.1);
        let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - legend_width);
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("time")
            .y_desc("memory")
            .x_label_formatter(&|x| fmt_clock(x * time_unit))
            .y_label_formatter(&|y| format!("{} {memory_unit}", fmt_number(*y)))
            .draw()
            .map_err(drawing)?;

        let mut legend: Vec<(String, RGBColor, u32)> = Vec::new();
        for (i, f) in report.attempts.iter().enumerate() {
            let color = attempt_color(i);
            chart
                .draw_series(LineSeries::new(
                    usage_points(f, &axes),
                    color.stroke_width(2),
                ))
                .map_err(drawing)?;
            legend.push((legend_label(f, many_jobs), color, 2));
        }

        let bounds: [(&str, RGBColor, Amount); 2] = [
            ("memory request", REQUEST_COLOR, |f| f.memory_request_bytes),
            ("memory limit", LIMIT_COLOR, |f| f.memory_limit_bytes),
        ];
        for (what, color, amount) in bounds {
            let mut drawn = false;
            for f in &report.attempts {
                let (Some(value), Some((start, end))) = (amount(f), f.held_interval()) else {
                    continue;
                };
                // A plateau only while this attempt holds it: gaps between attempts stay empty.
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
                legend.push((what.to_string(), color, 3));
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
        assert!(labels.iter().any(
            |t| t.starts_with("exit-nonzero: memory per attempt (0:00 = 2026-11-27T14:40:00Z)")
        ));

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
            labels.iter().any(|t| t == "10:00"),
            "x axis in mm:ss: {labels:?}"
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

    #[test]
    fn clock_labels() {
        assert_eq!(fmt_clock(0.0), "0:00");
        assert_eq!(fmt_clock(61.4), "1:01");
        assert_eq!(fmt_clock(3723.0), "1:02:03");
        assert_eq!(fmt_clock(-5.0), "0:00");
    }
}
