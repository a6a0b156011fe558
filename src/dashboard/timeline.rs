//! The timeline: metric series over a time range, with every fault window and incident of the run drawn on
//! the same time axis — what chaos users ask for most and no tool gives out of the box. Series come from
//! the recorded history by evaluating PromQL at evenly spaced instants (a range query); the chart is SVG
//! drawn by `plotters`.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde::Serialize;

use super::history::History;
use super::view::{ExperimentView, FaultView, IncidentView};
use crate::monitoring::promql;
use crate::monitoring::tsdb::Labels;

/// Most instants a range query evaluates (about one per two pixels of a wide chart).
pub const MAX_STEPS: i64 = 400;

/// Most series one chart draws; the rest are counted in the answer.
pub const MAX_SERIES: usize = 12;

/// A named query the Timeline page offers.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Preset {
    /// Short name (`sensor-throughput`).
    pub name: &'static str,
    /// Title of the chart.
    pub title: &'static str,
    /// PromQL over the run's metrics.
    pub query: &'static str,
}

/// The presets, named after what the reference systems' dashboards show.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "sensor-throughput",
        title: "Sensor throughput (records/s into MQTT_BROKER)",
        query: "sum by (link) (rate(chaoslab_link_messages_total{link=~\"SENSOR.*\",outcome=\"delivered\"}[30s]))",
    },
    Preset {
        name: "flink-windows",
        title: "FLINK windows emitted per minute",
        query: "rate(flink_windows_emitted_total[1m]) * 60",
    },
    Preset {
        name: "consumer-lag",
        title: "Consumer lag (records) per group and topic",
        query: "sum by (consumergroup, topic) (kafka_consumergroup_lag)",
    },
    Preset { name: "order-states", title: "Orders by state", query: "sum by (state) (poke_orders)" },
    Preset {
        name: "api-latency",
        title: "Order API mean latency (s)",
        query: "sum(rate(poke_order_api_request_duration_seconds_sum[1m])) / \
                sum(rate(poke_order_api_request_duration_seconds_count[1m]))",
    },
    Preset { name: "incidents", title: "Incidents reported", query: "sum(chaoslab_incidents_total)" },
    Preset {
        name: "link-drops",
        title: "Messages dropped per second, per link",
        query: "sum by (link) (rate(chaoslab_link_messages_total{outcome=~\"dropped_.*\"}[30s])) > 0",
    },
    Preset { name: "components-up", title: "Components up", query: "sum(chaoslab_component_up)" },
];

/// One series of a range query.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// Its labels, rendered (`{link="A->B"}`).
    pub name: String,
    /// `(ms since the run started, value)`.
    pub points: Vec<(u64, f64)>,
}

/// Evaluates `query` at evenly spaced instants of `[from, to]` (ms since the run started).
pub fn range_query(history: &History, query: &str, from: u64, to: u64) -> Result<Vec<Series>, String> {
    let expr = promql::parse(query).map_err(|e| e.to_string())?;
    let start = history.start_ms();
    let span = to.saturating_sub(from).max(1) as i64;
    let step = (span / MAX_STEPS).max(history.interval().as_millis() as i64).max(1);
    let mut by_labels: BTreeMap<Labels, Vec<(u64, f64)>> = BTreeMap::new();
    history.with_db(|db| -> Result<(), String> {
        let mut t = from as i64;
        while t <= to as i64 {
            let value = promql::eval_instant(&expr, db, start + t).map_err(|e| e.to_string())?;
            match value {
                promql::Value::Scalar(v) => by_labels.entry(Labels::new()).or_default().push((t as u64, v)),
                promql::Value::Vector(samples) => {
                    for s in samples {
                        by_labels.entry(s.labels).or_default().push((t as u64, s.value));
                    }
                }
                promql::Value::String(_) => return Err("a string is not a series".into()),
            }
            t += step;
        }
        Ok(())
    })?;
    Ok(by_labels
        .into_iter()
        .map(|(labels, points)| {
            let name = crate::monitoring::tsdb::format_labels(&labels);
            Series { name: if name.is_empty() { query.to_owned() } else { name }, points }
        })
        .collect())
}

/// A rendered chart and where its plot area lies, for the page's drag-to-zoom.
#[derive(Clone, Debug, Serialize)]
pub struct Chart {
    /// The SVG document.
    pub svg: String,
    /// Pixel bounds of the plot area.
    pub plot: PlotArea,
    /// Series drawn.
    pub series: Vec<String>,
    /// Series left out (more than [`MAX_SERIES`]).
    pub omitted: usize,
}

/// Pixel bounds of a chart's plot area.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PlotArea {
    /// Left edge.
    pub left: i32,
    /// Right edge.
    pub right: i32,
    /// Top edge.
    pub top: i32,
    /// Bottom edge.
    pub bottom: i32,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
];
const FAULT: RGBColor = RGBColor(214, 69, 69);
const INCIDENT: RGBColor = RGBColor(224, 165, 38);
const PHASE: RGBColor = RGBColor(46, 110, 190);
const MET: RGBColor = RGBColor(46, 157, 91);

/// What one chart shows.
pub struct ChartSpec<'a> {
    /// Title.
    pub title: &'a str,
    /// Range start and end, ms since the run started.
    pub from: u64,
    /// Range end.
    pub to: u64,
    /// Size in pixels.
    pub size: (u32, u32),
    /// Faults to shade (those overlapping the range).
    pub faults: &'a [FaultView],
    /// Incidents to mark.
    pub incidents: &'a [IncidentView],
    /// Experiments whose phases and probe verdicts are drawn.
    pub experiments: &'a [ExperimentView],
}

/// Draws `series` with the fault windows shaded and the incidents marked.
pub fn render(spec: &ChartSpec<'_>, series: &[Series]) -> Result<Chart, String> {
    crate::campaign::plot::font()?;
    let mut svg = String::new();
    let shown = &series[..series.len().min(MAX_SERIES)];
    let plot = {
        let root = SVGBackend::with_string(&mut svg, spec.size).into_drawing_area();
        draw(root, spec, shown).map_err(|e| e.to_string())?
    };
    // The page titles each chart; the SVG keeps the title as its accessible name (and a saved file's).
    if let Some(open) = svg.find("<svg").and_then(|at| svg[at..].find('>').map(|end| at + end + 1)) {
        svg.insert_str(open, &format!("<title>{}</title>", super::diagram::esc(spec.title)));
    }
    Ok(Chart {
        svg,
        plot,
        series: shown.iter().map(|s| s.name.clone()).collect(),
        omitted: series.len() - shown.len(),
    })
}

fn draw(
    root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    spec: &ChartSpec<'_>,
    series: &[Series],
) -> Result<PlotArea, Box<dyn std::error::Error>> {
    const FONT: &str = "sans-serif";
    root.fill(&WHITE)?;
    let (x0, x1) = (spec.from as f64 / 1000.0, (spec.to.max(spec.from + 1000)) as f64 / 1000.0);
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if !lo.is_finite() {
        (0.0, 1.0)
    } else {
        (lo.min(0.0), if hi <= lo.min(0.0) { lo.min(0.0) + 1.0 } else { hi * 1.08 })
    };
    let mut chart = ChartBuilder::on(&root)
        .margin(8)
        .margin_top(14)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("time since start")
        .x_label_formatter(&|s| clock(*s))
        .y_label_formatter(&|v| short(*v))
        .label_style((FONT, 11))
        .light_line_style(RGBColor(238, 240, 244))
        .draw()?;
    for f in spec.faults {
        let start = f.applied_ms as f64 / 1000.0;
        let end = f.ended_ms.map_or(spec.to as f64 / 1000.0, |e| e as f64 / 1000.0);
        if end < x0 || start > x1 {
            continue;
        }
        let (a, b) = (start.max(x0), end.min(x1).max(start.max(x0) + (x1 - x0) / 400.0));
        chart.draw_series(std::iter::once(Rectangle::new([(a, lo), (b, hi)], FAULT.mix(0.14).filled())))?;
        let label = format!("{} {}", f.id, f.kind);
        chart.draw_series(std::iter::once(Text::new(
            label,
            (a, hi),
            (FONT, 10).into_font().color(&FAULT),
        )))?;
    }
    for i in spec.incidents {
        let t = i.t_ms as f64 / 1000.0;
        if t < x0 || t > x1 {
            continue;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, lo), (t, hi)],
            INCIDENT.stroke_width(2),
        )))?;
        let label = format!("incident {}", i.name);
        let at = (t, lo + (hi - lo) * 0.08);
        chart.draw_series(std::iter::once(Text::new(label, at, (FONT, 10).into_font().color(&INCIDENT))))?;
    }
    // Experiment phases: a band along the bottom, one shade per phase; verdicts: a dot on it, green when the
    // probe's tolerance was met, red when not.
    let band = (hi - lo) * 0.05;
    for e in spec.experiments {
        for (i, p) in e.phases.iter().enumerate() {
            let (a, b) = (p.from_ms as f64 / 1000.0, p.to_ms as f64 / 1000.0);
            if b < x0 || a > x1 {
                continue;
            }
            let (a, b) = (a.max(x0), b.min(x1).max(a.max(x0) + (x1 - x0) / 400.0));
            let shade = PHASE.mix(if i % 2 == 0 { 0.35 } else { 0.2 });
            chart.draw_series(std::iter::once(Rectangle::new([(a, lo), (b, lo + band)], shade.filled())))?;
            if p.name == "method" {
                let label = format!("{} · {}", e.title, e.status);
                chart.draw_series(std::iter::once(Text::new(
                    label,
                    (a, lo + band * 2.6),
                    (FONT, 10).into_font().color(&PHASE),
                )))?;
            }
        }
        for v in &e.verdicts {
            let t = v.t_ms as f64 / 1000.0;
            if t < x0 || t > x1 {
                continue;
            }
            let colour = if v.met { MET } else { FAULT };
            chart.draw_series(std::iter::once(Circle::new((t, lo + band / 2.0), 4, colour.filled())))?;
        }
    }
    for (n, s) in series.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        let points: Vec<(f64, f64)> =
            s.points.iter().filter(|p| p.1.is_finite()).map(|&(t, v)| (t as f64 / 1000.0, v)).collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2)));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(210, 214, 222))
            .label_font((FONT, 10))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    root.present()?;
    Ok(PlotArea { left: xs.start, right: xs.end, top: ys.start, bottom: ys.end })
}

/// Seconds as `m:ss` or `h:mm:ss`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::tsdb::Labels;

    fn history() -> History {
        let h = History::new(1_000_000, std::time::Duration::from_secs(5));
        let labels: Labels =
            [("__name__".to_owned(), "x_total".to_owned()), ("link".to_owned(), "A->B".to_owned())].into();
        h.with_db_mut(|db| {
            for i in 0..=60 {
                db.append(labels.clone(), 1_000_000 + i * 5_000, (i * 10) as f64).unwrap();
            }
        });
        h
    }

    #[test]
    fn a_range_query_evaluates_at_steps_of_the_history() {
        let series = range_query(&history(), "rate(x_total[30s])", 60_000, 120_000).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].name, "{link=\"A->B\"}");
        let (t, v) = series[0].points[0];
        assert_eq!(t, 60_000);
        assert!((v - 2.0).abs() < 1e-9, "10 per 5 s is 2/s, got {v}");
        assert_eq!(series[0].points.len(), 13, "every 5 s from 60 s to 120 s");
        let err = range_query(&history(), "rate(x_total[", 0, 1).unwrap_err();
        assert!(!err.is_empty());
    }

    #[test]
    fn presets_parse() {
        for p in PRESETS {
            promql::parse(p.query).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
    }

    #[test]
    fn clock_reads_as_minutes_or_hours() {
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
