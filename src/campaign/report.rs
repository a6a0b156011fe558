//! A campaign's report: the plots ([`super::plot`]), `report.md` and `report.html` with the tables, the
//! exact command, the version and the seeds to reproduce it, beside `summary.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::analysis::{CampaignSummary, RunResult};
use super::detect::Window;
use super::spec::Campaign;
use super::{plot, series};

/// What the report is made of, besides the summary.
pub struct ReportInput<'a> {
    /// The campaign.
    pub campaign: &'a Campaign,
    /// Every run's result, in plan order.
    pub results: &'a [RunResult],
    /// The command that reproduces it.
    pub command: &'a str,
    /// The live instance the runs went to (`--target`); none for sim runs.
    pub target: Option<&'a str>,
}

/// Draws the plots and writes `report.md` and `report.html` under `out`; returns problems with plots
/// (they do not stop the report).
pub fn write(out: &Path, input: &ReportInput<'_>, summary: &CampaignSummary) -> anyhow::Result<Vec<String>> {
    let c = input.campaign;
    let mut problems = Vec::new();
    let parameter = summary.parameter.clone().unwrap_or_else(|| "point".into());
    let metric = &c.analysis.metric;
    // Each run: its series, faults shaded, events marked.
    for r in input.results.iter().filter(|r| r.error.is_none()) {
        let runs = out.join("runs");
        let csv = runs.join(format!("{}.csv", r.run.id));
        let Ok(all) = series::read(&csv) else { continue };
        let Some(s) = all.get(metric) else { continue };
        let truth: Vec<Window> = std::fs::read(runs.join(format!("{}.truth.json", r.run.id)))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Err(e) = plot::series(&runs.join(&r.run.id), &r.run.id, metric, s, &truth, &r.events) {
            problems.push(e);
            break;
        }
    }
    let pairs: Vec<(f64, f64)> = input
        .results
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.run.x.map(|x| r.recoveries.iter().map(move |y| (x, *y))))
        .flatten()
        .collect();
    let plotted = !pairs.is_empty() && problems.is_empty();
    if plotted {
        let title = format!("{}: recovery time against {parameter}", c.name);
        if let Err(e) =
            plot::recovery(&out.join("recovery"), &title, &parameter, &pairs, summary.regression.as_ref())
        {
            problems.push(e);
        }
        let mut by_point: std::collections::BTreeMap<_, Vec<f64>> = std::collections::BTreeMap::new();
        for r in input.results.iter().filter(|r| r.error.is_none()) {
            by_point.entry(&r.run.point).or_default().extend(r.recoveries.iter().copied());
        }
        let per_point: Vec<(f64, Vec<f64>)> = summary
            .points
            .iter()
            .filter_map(|p| Some((p.x?, by_point.get(&p.point).cloned().unwrap_or_default())))
            .collect();
        let title = format!("{}: recovery times per point", c.name);
        if let Err(e) = plot::distribution(&out.join("distribution"), &title, &parameter, &per_point) {
            problems.push(e);
        }
    }
    let md = markdown(input, summary, &problems, plotted && problems.is_empty());
    std::fs::write(out.join("report.md"), &md).with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::write(out.join("report.html"), html(&c.name, &md))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(problems)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn markdown(input: &ReportInput<'_>, s: &CampaignSummary, problems: &[String], plots: bool) -> String {
    let c = input.campaign;
    let parameter = s.parameter.clone().unwrap_or_else(|| "point".into());
    let mut md = String::new();
    let _ = writeln!(md, "# Campaign {}\n", c.name);
    if !c.description.is_empty() {
        let _ = writeln!(md, "{}\n", c.description);
    }
    let seeds = c.runs.seeds.expand().unwrap_or_default();
    let _ = writeln!(
        md,
        "{} runs ({} failed, {} deviating): {} points × seeds {:?}; each run up to {} of {} time (NUMBER_OF_RUNS {}, OFFSET {}).\n",
        s.runs,
        s.failed.len(),
        s.deviating.len(),
        s.points.len(),
        seeds,
        humantime::format_duration(c.run_length()),
        if input.target.is_some() { "real" } else { "virtual" },
        c.runs.number,
        humantime::format_duration(c.runs.offset)
    );
    let _ = writeln!(md, "## Recovery time\n");
    if let Some(r) = &s.recovery {
        let ci = r.ci95.map_or_else(|| "–".into(), |(lo, hi)| format!("{lo:.1}–{hi:.1} s"));
        let _ = writeln!(
            md,
            "Over all {} events: mean **{:.1} s**, median {:.1} s, 95 % CI {ci}, range {:.1}–{:.1} s.\n",
            r.n, r.mean, r.median, r.min, r.max
        );
    } else {
        let _ = writeln!(md, "No event was found.\n");
    }
    if let Some(r) = &s.truth_recovery {
        let _ = writeln!(
            md,
            "From each fault's start (the ground truth) to its event's end: mean {:.1} s, median {:.1} s over {} events — the wizard's durations start where the walk out from the peak ends, which may be before or after the fault.\n",
            r.mean, r.median, r.n
        );
    }
    if let Some(r) = &s.regression {
        let verdict = if r.p_value < 0.05 { "changes" } else { "does not measurably change" };
        let _ = writeln!(
            md,
            "Recovery time against {parameter}: slope {:.4} s per unit, intercept {:.1} s, R² {}, p {:.4} over {} events — in this model, {parameter} {verdict} the recovery time (α = 0.05).\n",
            r.slope,
            r.intercept,
            opt(r.r2, 3),
            r.p_value,
            r.n
        );
    }
    if let Some(r) = &s.regression_without_deviating {
        let verdict = if r.p_value < 0.05 { "changes" } else { "does not measurably change" };
        let _ = writeln!(
            md,
            "Without the {} runs that deviate (below): slope {:.4} s per unit, R² {}, p {:.4} over {} events — {parameter} {verdict} the recovery time.\n",
            s.deviating.len(),
            r.slope,
            opt(r.r2, 3),
            r.p_value,
            r.n
        );
    }
    if plots {
        let _ =
            writeln!(md, "![recovery against {parameter}](recovery.png)\n\n![per point](distribution.png)\n");
    }
    let _ = writeln!(
        md,
        "| {parameter} | runs | failed | deviating | events | mean (s) | median (s) | 95 % CI (s) | from the fault, mean (s) |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &s.points {
        let values: Vec<String> = p.point.values().cloned().collect();
        let r = p.recovery.as_ref();
        let ci = r.and_then(|r| r.ci95).map_or_else(|| "–".into(), |(lo, hi)| format!("{lo:.1}–{hi:.1}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {ci} | {} |",
            values.join(", "),
            p.runs,
            p.failed,
            p.deviating,
            p.events,
            opt(r.map(|r| r.mean), 1),
            opt(r.map(|r| r.median), 1),
            opt(p.truth_recovery.as_ref().map(|r| r.mean), 1)
        );
    }
    let _ = writeln!(md, "\n## Detection against the ground truth\n");
    let _ = writeln!(
        md,
        "The detector (prominence {}, median fraction {}) against the injected faults: precision {} (events a fault explains), recall {} (faults an event follows).\n",
        c.analysis.prominence,
        c.analysis.median_fraction,
        opt(s.precision, 2),
        opt(s.recall, 2)
    );
    if !s.deviating.is_empty() {
        let _ = writeln!(
            md,
            "## Runs that deviate\n\n{} of {} runs depart from the design; their recovery times are in the figures above, so read them with this list:\n",
            s.deviating.len(),
            s.runs
        );
        for (id, how) in &s.deviating {
            let _ = writeln!(md, "- {id}: {}", how.join("; "));
        }
        let _ = writeln!(md);
    }
    if !s.failed.is_empty() {
        let _ = writeln!(
            md,
            "## Runs that failed\n\nThey are left out of every figure; running the campaign again tries them again.\n"
        );
        for (id, why) in &s.failed {
            let _ = writeln!(md, "- {id}: {}", why.replace('\n', " "));
        }
        let _ = writeln!(md);
    }
    if let Some(r) = &s.resilience {
        let probes: Vec<String> = c
            .probes
            .iter()
            .map(|p| format!("`{} {} {}` ({:?}, weight {})", p.query, p.criteria, p.value, p.mode, p.weight))
            .collect();
        let _ = writeln!(
            md,
            "## Resilience score\n\nLitmus's score (Σ weight × passed / Σ weight) of the probes {}: mean {:.1} %, median {:.1} %, range {:.0}–{:.0} % over {} runs.\n",
            probes.join(", "),
            r.mean,
            r.median,
            r.min,
            r.max,
            r.n
        );
    }
    let _ = writeln!(
        md,
        "## Runs\n\n| run | samples | events | recovery times (s) | faults | resilience (%) | note |\n|---|---|---|---|---|---|---|"
    );
    for r in input.results {
        let times: Vec<String> = r.recoveries.iter().map(|t| format!("{t:.0}")).collect();
        let link = if plots && r.error.is_none() {
            format!("[{0}](runs/{0}.png)", r.run.id)
        } else {
            r.run.id.clone()
        };
        let note = match (&r.error, r.deviations.is_empty()) {
            (Some(e), _) => format!("failed: {e}"),
            (None, false) => format!("deviates: {}", r.deviations.join("; ")),
            (None, true) => r.warnings.first().cloned().unwrap_or_default(),
        };
        let _ = writeln!(
            md,
            "| {link} | {} | {} | {} | {} | {} | {} |",
            r.samples,
            r.events.len(),
            times.join(" "),
            r.faults.map_or_else(|| "–".into(), |f| f.to_string()),
            opt(r.resilience, 0),
            note.replace('|', "/").replace('\n', " ")
        );
    }
    if !problems.is_empty() {
        let _ = writeln!(md, "\nPlots: {}", problems.join("; "));
    }
    let _ = writeln!(
        md,
        "\n## Reproduce\n\n```\n{}\n```\n\nchaoslab {} ({}); {}",
        input.command,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        match input.target {
            None => "every run is a sim run fixed by its seed: the same command writes the same files."
                .to_string(),
            Some(url) => format!(
                "the runs went to the live instance at {url} in real time, one after another (a seed only numbers \
                 the repetition): a live run is not reproducible to the byte."
            ),
        }
    );
    md
}

/// The report as a self-contained HTML page (no script, no remote resources).
fn html(name: &str, md: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(md, pulldown_cmark::Options::ENABLE_TABLES);
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, parser);
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Campaign {}</title><style>\
         body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}\
         img{{max-width:100%}}code,pre{{background:#f4f4f4}}</style></head><body>\n{body}</body></html>\n",
        name.replace('<', "&lt;")
    )
}
