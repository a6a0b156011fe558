//! Progress bars for long commands: on a terminal only (stdout and stderr both), never with `--quiet`.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use chaoslab::runner::ProgressFn;

/// Whether a bar may be drawn: not asked to be quiet, and a person is watching.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A bar with `template`, or a hidden one when none is wanted.
pub fn bar(quiet: bool, template: &str) -> ProgressBar {
    if !wanted(quiet) {
        return ProgressBar::hidden();
    }
    ProgressBar::new(0)
        .with_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()))
}

/// A sim run's bar (virtual time reached of the whole, wall time, records per wall second) and the callback
/// that moves it; `None` when no bar is wanted.
pub fn sim(quiet: bool) -> Option<(ProgressBar, ProgressFn)> {
    if !wanted(quiet) {
        return None;
    }
    let bar = bar(quiet, "{bar:40} virtual {msg} · {elapsed} wall");
    bar.set_length(1000);
    let started = Instant::now();
    let shown = bar.clone();
    let f: ProgressFn = Arc::new(move |reached: Duration, whole: Duration, records: u64| {
        let wall = started.elapsed().as_secs_f64().max(1e-3);
        shown.set_position((reached.as_secs_f64() / whole.as_secs_f64().max(1e-9) * 1000.0) as u64);
        shown.set_message(format!(
            "{} of {} · {:.0} records/s",
            humantime::format_duration(Duration::from_secs(reached.as_secs())),
            humantime::format_duration(Duration::from_secs(whole.as_secs())),
            records as f64 / wall
        ));
    });
    Some((bar, f))
}
