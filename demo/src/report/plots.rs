//! The report's plots, as PNG files of [`WIDTH`] × [`HEIGHT`] pixels:
//!
//! - `accuracy.png`: the global model's federated accuracy after each round against the
//!   centralised baseline (and the threshold), y in `[0, 1]`;
//! - `phases.png`: seconds per phase per round, as stacked bars;
//! - `stakes.png`: each agent's stake at the start and after each round, one line per agent.
//!
//! Drawn with plotters into an RGB buffer (text through the embedded font of [`super::font`])
//! and encoded with the `png` crate. The x axis is the position of the round in the report
//! (labelled with its round number), so gaps or repeats in round numbers draw correctly.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::files::ensure_dir;
use super::font::FAMILY;
use super::{ReportError, RunReport, font};

/// Width of every plot, in pixels.
pub const WIDTH: u32 = 900;
/// Height of every plot, in pixels.
pub const HEIGHT: u32 = 500;

/// The file name of the accuracy plot.
pub const ACCURACY_PNG: &str = "accuracy.png";
/// The file name of the phase-time plot.
pub const PHASES_PNG: &str = "phases.png";
/// The file name of the stake plot.
pub const STAKES_PNG: &str = "stakes.png";

/// The federated model's colour.
pub const FEDERATED: RGBColor = RGBColor(31, 119, 180);
/// The centralised baseline's colour.
pub const CENTRALISED: RGBColor = RGBColor(214, 39, 40);
const THRESHOLD: RGBColor = RGBColor(128, 128, 128);
/// The colours of the phases, in the order beacon, training, voting, finalise.
pub const PHASE_COLOURS: [RGBColor; 4] = [
    RGBColor(148, 103, 189),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// The agents' colours, cycled (matplotlib's `tab10`).
const AGENT_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// The minor grid lines: barely there.
const LIGHT_GRID: RGBColor = RGBColor(242, 242, 242);

const CAPTION_SIZE: u32 = 22;
const LABEL_SIZE: u32 = 14;

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Writes `accuracy.png`, `phases.png` and `stakes.png` into `dir` (created if missing) and
/// returns their paths in that order.
pub fn write_plots(dir: &Path, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
    ensure_dir(dir)?;
    font::ensure_registered()?;
    Ok(vec![
        render_png(&dir.join(ACCURACY_PNG), |root| {
            draw_accuracy(root, report).map_err(|e| e.to_string())
        })?,
        render_png(&dir.join(PHASES_PNG), |root| {
            draw_phases(root, report).map_err(|e| e.to_string())
        })?,
        render_png(&dir.join(STAKES_PNG), |root| {
            draw_stakes(root, report).map_err(|e| e.to_string())
        })?,
    ])
}

/// Draws into a white RGB buffer with `draw` and writes it to `path` as PNG.
fn render_png<F>(path: &Path, draw: F) -> Result<PathBuf, ReportError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
{
    let plot_err = |message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
        draw(&root).map_err(plot_err)?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    encode_png(path, &pixels)?;
    Ok(path.to_path_buf())
}

fn encode_png(path: &Path, rgb: &[u8]) -> Result<(), ReportError> {
    let file = File::create(path).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    let png_err = |source| ReportError::Png {
        path: path.to_path_buf(),
        source,
    };
    let mut encoder = png::Encoder::new(BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)
}

/// Labels for x positions `0..labels.len()`; other positions (and fractions) get none.
fn position_label(labels: &[String], x: f64) -> String {
    let nearest = x.round();
    if (x - nearest).abs() > 1e-6 || nearest < 0.0 {
        return String::new();
    }
    labels.get(nearest as usize).cloned().unwrap_or_default()
}

/// The x range that puts positions `0..n` half a step from each edge.
fn x_range(n: usize) -> std::ops::Range<f64> {
    -0.5..(n.max(1) as f64 - 0.5)
}

/// At most this many x labels (round numbers), so long runs stay legible.
fn x_label_count(n: usize) -> usize {
    n.clamp(1, 20)
}

/// How one of the report's charts is framed: its caption, x labels (one per position), y range
/// and axis texts.
struct Frame<'l> {
    caption: String,
    labels: &'l [String],
    y: std::ops::Range<f64>,
    y_area: u32,
    y_format: &'l dyn Fn(&f64) -> String,
    x_desc: &'l str,
    y_desc: &'l str,
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart over the positions `0..labels.len()` with the report's look (caption, light grid,
/// fonts), its mesh and labels drawn.
fn framed<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    f: &Frame<'_>,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let n = f.labels.len();
    let mut chart = ChartBuilder::on(root)
        .caption(&f.caption, (FAMILY, CAPTION_SIZE))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(f.y_area)
        .build_cartesian_2d(x_range(n), f.y.clone())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(LIGHT_GRID)
        .x_labels(x_label_count(n))
        .x_label_formatter(&|x| position_label(f.labels, *x))
        .y_label_formatter(f.y_format)
        .x_desc(f.x_desc)
        .y_desc(f.y_desc)
        .label_style((FAMILY, LABEL_SIZE))
        .axis_desc_style((FAMILY, LABEL_SIZE))
        .draw()?;
    Ok(chart)
}

fn draw_accuracy<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &RunReport,
) -> DrawResult<DB> {
    let n = r.rounds.len();
    let labels: Vec<String> = r.rounds.iter().map(|x| x.round.to_string()).collect();
    let mut chart = framed(
        root,
        &Frame {
            caption: format!("Accuracy per round ({}, {} agents)", r.dataset, r.agents),
            labels: &labels,
            y: 0f64..1f64,
            y_area: 60,
            y_format: &|y| format!("{:.0} %", y * 100.0),
            x_desc: "round",
            y_desc: "accuracy on the pooled test set",
        },
    )?;

    let federated: Vec<(f64, f64)> = r
        .rounds
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64, x.accuracy))
        .collect();
    let centralised: Vec<(f64, f64)> = r
        .centralised_accuracy
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, a)| (i as f64, *a))
        .collect();
    for (name, colour, points) in [
        ("federated", FEDERATED, &federated),
        ("centralised baseline", CENTRALISED, &centralised),
    ] {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))?;
    }
    let span = x_range(n);
    chart
        .draw_series(LineSeries::new(
            [
                (span.start, r.accuracy_threshold),
                (span.end, r.accuracy_threshold),
            ],
            THRESHOLD.stroke_width(1),
        ))?
        .label(format!("threshold {:.0} %", r.accuracy_threshold * 100.0))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], THRESHOLD.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, LABEL_SIZE))
        .draw()
}

fn draw_phases<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    let labels: Vec<String> = r.rounds.iter().map(|x| x.round.to_string()).collect();
    let tallest = r
        .rounds
        .iter()
        .map(|x| x.phases.total())
        .filter(|t| t.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom for the legend in the upper right.
    let top = if tallest > 0.0 { tallest * 1.4 } else { 1.0 };
    let mut chart = framed(
        root,
        &Frame {
            caption: "Time per phase per round".to_owned(),
            labels: &labels,
            y: 0f64..top,
            y_area: 60,
            y_format: &|y| format!("{y:.0}"),
            x_desc: "round",
            y_desc: "seconds",
        },
    )?;

    let phase_names = ["beacon", "training + SecAgg+", "voting", "finalise"];
    for (k, (name, colour)) in phase_names.into_iter().zip(PHASE_COLOURS).enumerate() {
        let bars = r.rounds.iter().enumerate().map(|(i, round)| {
            let p = round.phases;
            let parts = [p.beacon, p.training, p.voting, p.finalise];
            let base: f64 = parts[..k].iter().sum();
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, base), (x + 0.35, base + parts[k])],
                colour.filled(),
            )
        });
        chart
            .draw_series(bars)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, LABEL_SIZE))
        .draw()
}

fn draw_stakes<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &RunReport) -> DrawResult<DB> {
    // Position 0 is the start of the run, position i + 1 the end of rounds[i].
    let n = r.rounds.len() + 1;
    let labels: Vec<String> = std::iter::once("start".to_owned())
        .chain(r.rounds.iter().map(|x| x.round.to_string()))
        .collect();
    let series: Vec<(&str, Vec<(f64, f64)>)> = r
        .agents_summary
        .iter()
        .map(|a| {
            let points = std::iter::once(a.stake_start)
                .chain(a.stake_per_round.iter().copied())
                .take(n)
                .enumerate()
                .map(|(i, s)| (i as f64, s))
                .collect();
            (a.name.as_str(), points)
        })
        .collect();
    let (lo, hi) = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .filter(|s| s.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s), hi.max(s))
        });
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        let pad = ((hi - lo) * 0.1).max(1.0);
        (lo - pad, hi + pad)
    };
    let mut chart = framed(
        root,
        &Frame {
            caption: "Stake per agent".to_owned(),
            labels: &labels,
            y: lo..hi,
            y_area: 80,
            y_format: &|y| format!("{y:.1}"),
            x_desc: "after round",
            y_desc: "stake (FLOCK)",
        },
    )?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = AGENT_COLOURS[i % AGENT_COLOURS.len()];
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, LABEL_SIZE))
        .draw()
}
