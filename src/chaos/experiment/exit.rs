//! Exit codes of the `chaos` command line (chaostoolkit 1.19), so chaoslab's CLI and CI jobs read
//! results the same way.
//!
//! | Command | 1 when | otherwise |
//! |---|---|---|
//! | `run` | the source is invalid, validation fails, `status != "completed"`, or `deviated` | 0 |
//! | `validate` | the experiment is invalid | 0 |
//! | `settings get/set/remove` | the file or key is missing | 0 |
//! | `discover` | never (a failure is only logged) | 0 |
//!
//! Usage errors (unknown option, bad value) exit 2, as Click does. A `run` whose hypothesis did not
//! hold *before* the method ends `completed` and not deviated, so it exits 0.

use super::journal::{Journal, JournalStatus};

/// Success.
pub const SUCCESS: u8 = 0;
/// Invalid experiment, failed/aborted/interrupted run, or deviation.
pub const FAILURE: u8 = 1;
/// Command-line usage error.
pub const USAGE: u8 = 2;

/// `chaos run`'s exit code for a journal.
pub fn run_exit_code(journal: &Journal) -> u8 {
    if journal.status != JournalStatus::Completed || journal.deviated { FAILURE } else { SUCCESS }
}

/// `chaos validate`'s (and `chaos run`'s, before running) exit code for a validation result.
pub fn validate_exit_code<T, E>(validation: &Result<T, E>) -> u8 {
    if validation.is_ok() { SUCCESS } else { FAILURE }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::journal::SteadyStates;

    fn journal(status: JournalStatus, deviated: bool) -> Journal {
        Journal {
            chaoslib_version: String::new(),
            platform: String::new(),
            node: String::new(),
            experiment: json!({}),
            start: String::new(),
            status,
            deviated,
            steady_states: SteadyStates::default(),
            run: vec![],
            rollbacks: vec![],
            end: String::new(),
            duration: 0.0,
            measurements: None,
            ground_truth: None,
        }
    }

    #[test]
    fn run_exit_codes() {
        assert_eq!(run_exit_code(&journal(JournalStatus::Completed, false)), SUCCESS);
        assert_eq!(run_exit_code(&journal(JournalStatus::Completed, true)), FAILURE);
        for status in [JournalStatus::Failed, JournalStatus::Aborted, JournalStatus::Interrupted] {
            assert_eq!(run_exit_code(&journal(status, false)), FAILURE, "{status:?}");
        }
    }

    #[test]
    fn validate_exit_codes() {
        assert_eq!(validate_exit_code(&Ok::<(), ()>(())), SUCCESS);
        assert_eq!(validate_exit_code(&Err::<(), _>("invalid")), FAILURE);
        assert_eq!(USAGE, 2);
    }
}
