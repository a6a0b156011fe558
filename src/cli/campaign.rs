//! `chaoslab campaign run|report|analyse`: the ChaosMeshWizard's study loop, built in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use chaoslab::executions::{Execution, Kind, Store};

use super::fault::Target;
use chaoslab::campaign::analysis::{self, RunResult};
use chaoslab::campaign::run::{self, Mode, Progress, RunId};
use chaoslab::campaign::spec::Analysis;
use chaoslab::campaign::target::Remote;
use chaoslab::campaign::{Campaign, CampaignSummary, report, series};

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Run every point and seed of a campaign file (finished runs under --out are kept, not redone).
    Run(RunArgs),
    /// Analyse a campaign's kept runs again (its CSVs and ground truth) and rebuild the summary — with the
    /// analysis settings of --campaign when given (the detector's prominence, …).
    Report {
        /// The campaign's --out directory.
        dir: PathBuf,
        /// A campaign file whose [analysis] to use instead of the one the runs were made with.
        #[arg(long)]
        campaign: Option<PathBuf>,
    },
    /// The wizard's analysis on CSVs captured elsewhere (`Metric,Time,Value`).
    Analyse(AnalyseArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The campaign file.
    file: PathBuf,
    /// Where runs, the summary and the report go.
    #[arg(long, default_value = "campaign-out")]
    out: PathBuf,
    /// Runs at once (each is one thread).
    #[arg(short = 'j', long, default_value_t = 1)]
    jobs: usize,
    /// No progress bar (there is none anyway when stdout is not a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Run against a live chaoslab at this URL in real time, one run after another (the seed then only
    /// numbers the repetition): the chaos goes to its Chaos Mesh API and control plane.
    #[arg(long)]
    target: Option<String>,
    /// With --target: where the series are queried (`/api/v1/query`), e.g. a Prometheus scraping the
    /// target (default: the target itself).
    #[arg(long, requires = "target")]
    prometheus: Option<String>,
    /// With --target: bearer token (default: $CHAOSLAB_TOKEN, else --token-file).
    #[arg(long, requires = "target")]
    token: Option<String>,
    /// With --target: file holding the token (default: out/control-token, written by `chaoslab run`).
    #[arg(long, requires = "target")]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct AnalyseArgs {
    /// CSV files in the wizard's format.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The metric to find events in.
    #[arg(long, default_value = "Lag_Input_Topic")]
    metric: String,
    /// Least prominence of a peak (the notebook's 50).
    #[arg(long, default_value_t = 50.0)]
    prominence: f64,
    /// Where events end: below this share of the median.
    #[arg(long, default_value_t = 1.0)]
    median_fraction: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a campaign command.
pub fn execute(command: CampaignCommand) -> anyhow::Result<ExitCode> {
    match command {
        CampaignCommand::Run(a) => run_campaign(a),
        CampaignCommand::Report { dir, campaign } => {
            let summary = report(&dir, campaign.as_deref())?;
            print_summary(&summary);
            Ok(ExitCode::SUCCESS)
        }
        CampaignCommand::Analyse(a) => analyse(a),
    }
}

/// The progress bar, and the execution store each finished run is kept in.
struct Bar(ProgressBar, Option<Store>, String);

impl Progress for Bar {
    fn start(&self, total: usize, kept: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(kept as u64);
        self.0.reset_eta();
        if kept > 0 {
            self.0.suspend(|| eprintln!("{kept} of {total} runs are done already; running the others"));
        }
    }
    fn done(&self, r: &RunResult) {
        if let Some(e) = &r.error {
            self.0.suspend(|| eprintln!("{}: failed: {e}", r.run.id));
        }
        if let Some(store) = &self.1 {
            store.record(&execution_of(r, &self.2));
        }
        self.0.inc(1);
    }
}

/// A campaign run as the execution store keeps it: it passed when it finished and its detected events
/// match the faults injected (no deviation).
fn execution_of(r: &RunResult, origin: &str) -> Execution {
    Execution {
        id: 0,
        kind: Kind::Campaign,
        title: r.run.id.clone(),
        status: if r.error.is_some() { "failed" } else { "completed" }.into(),
        passed: Some(r.error.is_none() && r.deviations.is_empty()),
        started: String::new(),
        ended: None,
        source: "cli".into(),
        command: chaoslab::executions::this_command(),
        origin: origin.to_owned(),
        resilience: r.resilience,
        ground_truth: r.truth.as_ref().and_then(|t| serde_json::to_value(t).ok()),
        journal: serde_json::to_value(r).unwrap_or_default(),
    }
}

fn run_campaign(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (campaign, warnings) = match Campaign::load(&a.file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &warnings {
        eprintln!("{w}");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    std::fs::copy(&a.file, a.out.join("campaign.toml")).context("cannot keep a copy of the campaign file")?;
    let bar = super::progress::bar(a.quiet, "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ETA {eta}");
    let started = std::time::Instant::now();
    let remote = match &a.target {
        Some(url) => {
            let auth = Target { url: url.clone(), token: a.token.clone(), token_file: a.token_file.clone() };
            Some(Remote::new(url, a.prometheus.as_deref(), auth.token()?)?)
        }
        None => None,
    };
    if remote.is_some() && a.jobs > 1 {
        eprintln!(
            "-j {} is ignored with --target: the runs share the instance, so they go one after another",
            a.jobs
        );
    }
    let mode = match &remote {
        Some(r) => Mode::Live(r),
        None => Mode::Sim { jobs: a.jobs },
    };
    let origin = a.out.display().to_string();
    let results = run::run_all(&campaign, &a.out, mode, &Bar(bar.clone(), Store::open_default(), origin))?;
    bar.finish_and_clear();
    let summary = write_outputs(&campaign, &a.out, &results, a.target.as_deref())?;
    print_summary(&summary);
    let how = match &a.target {
        Some(url) => format!("against {url}"),
        None => format!("-j {}", a.jobs),
    };
    println!(
        "{} runs in {:.1} s wall ({how}); outputs in {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(
    c: &Campaign,
    out: &Path,
    results: &[RunResult],
    target: Option<&str>,
) -> anyhow::Result<CampaignSummary> {
    let parameter = c.grid.keys().next().map(String::as_str);
    let mut summary = analysis::summarise(&c.name, parameter, results);
    summary.target = target.map(str::to_string);
    run::write_json(&out.join("summary.json"), &summary)?;
    let command: Vec<String> = std::env::args().collect();
    let input = report::ReportInput { campaign: c, results, command: &command.join(" "), target };
    for problem in report::write(out, &input, &summary)? {
        eprintln!("{problem}");
    }
    Ok(summary)
}

/// Analyses a campaign directory's kept runs again and rebuilds the summary.
fn report(dir: &Path, settings: Option<&Path>) -> anyhow::Result<CampaignSummary> {
    let kept = dir.join("campaign.toml");
    let text = std::fs::read_to_string(&kept).with_context(|| format!("cannot read {}", kept.display()))?;
    let campaign = Campaign::parse(&text, &kept.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let analysis = match settings {
        None => campaign.analysis.clone(),
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            Campaign::parse(&text, &file.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?.analysis
        }
    };
    let runs = run::plan(&campaign)?;
    let results: Vec<RunResult> =
        runs.iter().map(|r| run::reanalyse(dir, &analysis, &campaign.probes, r)).collect();
    // A live campaign stays one: its report says so.
    let before: Option<CampaignSummary> =
        std::fs::read(dir.join("summary.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let target = before.and_then(|s| s.target);
    write_outputs(&campaign, dir, &results, target.as_deref())
}

fn print_summary(s: &CampaignSummary) {
    println!(
        "campaign {}: {} runs, {} failed, {} deviating",
        s.name,
        s.runs,
        s.failed.len(),
        s.deviating.len()
    );
    for (id, why) in &s.failed {
        println!("  {id}: {why}");
    }
    for (id, how) in &s.deviating {
        println!("  {id} deviates: {}", how.join("; "));
    }
    if let Some(r) = &s.recovery {
        let ci = r.ci95.map(|(lo, hi)| format!(", 95% CI {lo:.1}–{hi:.1}")).unwrap_or_default();
        println!("recovery time: mean {:.1} s, median {:.1} s over {} events{ci}", r.mean, r.median, r.n);
    }
    if let Some(r) = &s.truth_recovery {
        println!(
            "from each fault's start to its event's end: mean {:.1} s, median {:.1} s",
            r.mean, r.median
        );
    }
    let param = s.parameter.as_deref().unwrap_or("point");
    for p in &s.points {
        let values: Vec<String> = p.point.values().cloned().collect();
        let rec = p
            .recovery
            .as_ref()
            .map(|r| format!("mean {:.1} s, median {:.1} s", r.mean, r.median))
            .unwrap_or_else(|| "no events".into());
        println!("  {param}={:<8} {} runs, {} events: {rec}", values.join(","), p.runs, p.events);
    }
    if let Some(r) = &s.regression {
        println!("recovery ~ {param}: {r}");
    }
    if let Some(r) = &s.regression_without_deviating {
        println!("  without the deviating runs: {r}");
    }
    if let Some(r) = &s.resilience {
        println!(
            "resilience score: mean {:.1} %, range {:.0}–{:.0} % over {} runs",
            r.mean, r.min, r.max, r.n
        );
    }
    if let (Some(p), Some(r)) = (s.precision, s.recall) {
        println!("detection against the ground truth: precision {p:.2}, recall {r:.2}");
    }
}

fn analyse(a: AnalyseArgs) -> anyhow::Result<ExitCode> {
    let analysis = Analysis {
        metric: a.metric.clone(),
        prominence: a.prominence,
        median_fraction: a.median_fraction,
        num_peaks: None,
        slack: std::time::Duration::from_secs(10),
        faults: Vec::new(),
    };
    let mut results = Vec::new();
    let mut bad = 0;
    for file in &a.files {
        let id = RunId::external(&file.display().to_string());
        match series::read(file) {
            Ok(s) => results.push(analysis::analyse_run(&analysis, &[], &id, &s, None)),
            Err(e) => {
                eprintln!("{e}");
                bad += 1;
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            match &r.error {
                Some(e) => println!("{}: {e}", r.run.id),
                None => {
                    println!("{}: {} samples, {} events", r.run.id, r.samples, r.events.len());
                    for e in &r.events {
                        println!("  samples {}–{}: {:.3} s (peak {})", e.start, e.end, e.duration(), e.peak);
                    }
                }
            }
        }
        let all: Vec<f64> = results.iter().flat_map(|r| r.recoveries.iter().copied()).collect();
        if let Some(s) = chaoslab::campaign::stats::summary(&all) {
            println!("mean recovery time {:.3} s, median {:.3} s over {} events", s.mean, s.median, s.n);
        }
    }
    Ok(if bad > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
