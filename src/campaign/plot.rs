//! A campaign's plots, as PNG and SVG (`plotters`): each run's series with the fault windows shaded and the
//! detected events marked; recovery time against the swept parameter with the regression line; the
//! distribution of recovery times per point.
//!
//! Text needs a TrueType font: `CHAOSLAB_FONT`, or DejaVu Sans or Liberation Sans where Debian puts them
//! (`fonts-dejavu-core`). Without one, no plot is drawn and the report says why.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::detect::{Event, Window};
use super::series::Series;
use super::stats::Regression;

const FONT: &str = "sans-serif";
const FAULT: RGBColor = RGBColor(214, 39, 40);
const EVENT: RGBColor = RGBColor(31, 119, 180);

/// The font plots use, registered once; why not, when there is none.
pub fn font() -> Result<(), String> {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("CHAOSLAB_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(
                    [
                        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                        "/usr/share/fonts/TTF/DejaVuSans.ttf",
                        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                    ]
                    .map(PathBuf::from),
                )
                .collect();
            for path in &candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    // The font table wants bytes that live as long as the process: one font, read once.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err("no TrueType font to draw text with: install fonts-dejavu-core or set CHAOSLAB_FONT".into())
        })
        .clone()
}

type Drawn = Result<(), Box<dyn Error>>;

/// Draws with `draw` into `<base>.png` and `<base>.svg`.
fn both(
    base: &Path,
    size: (u32, u32),
    png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Drawn,
    svg: impl Fn(DrawingArea<SVGBackend, Shift>) -> Drawn,
) -> Result<(), String> {
    font()?;
    let png_path = base.with_extension("png");
    let svg_path = base.with_extension("svg");
    let root = BitMapBackend::new(&png_path, size).into_drawing_area();
    png(root).map_err(|e| format!("{}: {e}", png_path.display()))?;
    let root = SVGBackend::new(&svg_path, size).into_drawing_area();
    svg(root).map_err(|e| format!("{}: {e}", svg_path.display()))
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi)
    }
}

/// A run's series over time (seconds from its first sample), fault windows shaded red, detected events blue.
fn draw_series<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    metric: &str,
    s: &Series,
    truth: &[Window],
    events: &[Event],
) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t0 = s.times.first().copied().unwrap_or(0.0);
    let (_, x_max) = range(s.times.iter().map(|t| t - t0));
    let (_, y_max) = range(s.values.iter().copied());
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(metric)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 12))
        .draw()?;
    let top = y_max * 1.05;
    // Faults that end inside the capture are shaded; those lasting past it (a swept delay: a condition of
    // the run) are a grey band along the top.
    let last = x_max + t0;
    chart.draw_series(truth.iter().map(|w| match w.end.filter(|e| *e < last) {
        Some(end) => Rectangle::new([(w.start - t0, 0.0), (end - t0, top)], FAULT.mix(0.15).filled()),
        None => Rectangle::new([(w.start - t0, top * 0.97), (x_max, top)], BLACK.mix(0.2).filled()),
    }))?;
    chart.draw_series(events.iter().map(|e| {
        Rectangle::new([(e.start_time - t0, 0.0), (e.end_time - t0, top * 0.04)], EVENT.mix(0.8).filled())
    }))?;
    chart.draw_series(LineSeries::new(
        s.times.iter().zip(&s.values).map(|(t, v)| (t - t0, *v)),
        BLACK.stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

/// `<base>.png` and `.svg`: a run's series, faults and events.
pub fn series(
    base: &Path,
    title: &str,
    metric: &str,
    s: &Series,
    truth: &[Window],
    events: &[Event],
) -> Result<(), String> {
    both(
        base,
        (900, 320),
        |root| draw_series(root, title, metric, s, truth, events),
        |root| draw_series(root, title, metric, s, truth, events),
    )
}

/// A chart with numbers on both axes.
type Axes<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The axes of the recovery plots: the parameter across, recovery time (s) up to 10 % over `y_max`.
fn recovery_axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    parameter: &str,
    x: std::ops::Range<f64>,
    y_max: f64,
) -> Result<Axes<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x, 0.0..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(parameter)
        .y_desc("recovery time (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 12))
        .draw()?;
    Ok(chart)
}

fn draw_recovery<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    parameter: &str,
    pairs: &[(f64, f64)],
    line: Option<&Regression>,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x0, x1) = range(pairs.iter().map(|p| p.0));
    let (_, y1) = range(pairs.iter().map(|p| p.1));
    let pad = (x1 - x0) * 0.03;
    let mut chart = recovery_axes(&root, title, parameter, (x0 - pad)..(x1 + pad), y1)?;
    chart.draw_series(pairs.iter().map(|(x, y)| Circle::new((*x, *y), 3, EVENT.mix(0.5).filled())))?;
    if let Some(r) = line {
        let at = |x: f64| r.intercept + r.slope * x;
        chart
            .draw_series(LineSeries::new([(x0, at(x0)), (x1, at(x1))], FAULT.stroke_width(2)))?
            .label(format!(
                "slope {:.4} s/unit, R² {}, p {:.3}",
                r.slope,
                r.r2.map_or_else(|| "–".into(), |v| format!("{v:.2}")),
                r.p_value
            ))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], FAULT.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// `<base>.png` and `.svg`: recovery time of every event against the parameter, with the fitted line.
pub fn recovery(
    base: &Path,
    title: &str,
    parameter: &str,
    pairs: &[(f64, f64)],
    line: Option<&Regression>,
) -> Result<(), String> {
    both(
        base,
        (800, 480),
        |root| draw_recovery(root, title, parameter, pairs, line),
        |root| draw_recovery(root, title, parameter, pairs, line),
    )
}

fn draw_distribution<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    parameter: &str,
    points: &[(f64, Vec<f64>)],
) -> Drawn
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (_, y1) = range(points.iter().flat_map(|p| p.1.iter().copied()));
    let width = if points.len() > 1 { (x1 - x0) / (points.len() - 1) as f64 * 0.35 } else { 0.5 };
    let mut chart = recovery_axes(&root, title, parameter, (x0 - width * 2.0)..(x1 + width * 2.0), y1)?;
    for (x, values) in points {
        let Some(s) = super::stats::summary(values) else { continue };
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        // The middle half as a box, the median as a line, every value as a dot.
        chart.draw_series([Rectangle::new(
            [(x - width, q(0.25)), (x + width, q(0.75))],
            EVENT.mix(0.25).filled(),
        )])?;
        chart.draw_series([PathElement::new(
            [(x - width, s.median), (x + width, s.median)],
            EVENT.stroke_width(2),
        )])?;
        chart.draw_series(values.iter().map(|v| Circle::new((*x, *v), 2, BLACK.mix(0.6).filled())))?;
    }
    root.present()?;
    Ok(())
}

/// `<base>.png` and `.svg`: recovery times per point (box: middle half, line: median, dots: events).
pub fn distribution(
    base: &Path,
    title: &str,
    parameter: &str,
    points: &[(f64, Vec<f64>)],
) -> Result<(), String> {
    both(
        base,
        (800, 480),
        |root| draw_distribution(root, title, parameter, points),
        |root| draw_distribution(root, title, parameter, points),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_png_and_svg() {
        if let Err(why) = font() {
            // CI installs a font (fonts-dejavu-core); a machine without one gets no plots, and says so.
            crate::testing::skip("plots_are_written_as_png_and_svg", &why.to_string());
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut s = Series::default();
        for i in 0..100 {
            s.push(1000.0 + i as f64 * 2.0, if (40..60).contains(&i) { 500.0 } else { 0.0 });
        }
        let w =
            Window { fault: "f".into(), kind: "process-failure".into(), start: 1078.0, end: Some(1108.0) };
        let e = Event { start: 39, end: 60, start_time: 1078.0, end_time: 1120.0, peak: 500.0 };
        series(&dir.path().join("run"), "a run", "Lag_Input_Topic", &s, &[w], &[e]).unwrap();
        let pairs = [(0.0, 60.0), (100.0, 70.0), (200.0, 79.0)];
        let line = super::super::stats::regression(&pairs);
        recovery(&dir.path().join("recovery"), "recovery", "latency (ms)", &pairs, line.as_ref()).unwrap();
        distribution(
            &dir.path().join("dist"),
            "per point",
            "latency (ms)",
            &[(0.0, vec![60.0, 62.0]), (100.0, vec![70.0])],
        )
        .unwrap();
        for f in ["run.png", "recovery.png", "dist.png"] {
            let bytes = std::fs::read(dir.path().join(f)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{f}");
        }
        let svg = std::fs::read_to_string(dir.path().join("recovery.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("slope 0.0950"), "the legend names the fit");
    }
}
