//! Campaigns: the ChaosMeshWizard's study loop built in. A campaign file ([`spec`]) names a flow, Chaos
//! Mesh files with `${parameter}` placeholders, a parameter [`grid`], seeds, the series to capture and how
//! to analyse them; [`run`] runs every point and seed as an independent sim run on a pool of threads
//! (resuming where it stopped), writing the captured [`series`] in the wizard's CSV format with the
//! ground truth of each fault; [`detect`] finds the chaos events as the wizard's notebook does and checks
//! them against that truth; [`analysis`] and [`stats`] summarise recovery times per point and fit the
//! dose-response line; [`plot`] and [`report`] draw them and write `report.md` and `report.html`.

pub mod analysis;
pub mod detect;
pub mod grid;
pub mod plot;
pub mod report;
pub mod run;
pub mod series;
pub mod spec;
pub mod stats;

pub use analysis::{CampaignSummary, RunResult};
pub use spec::Campaign;
