//! Campaigns: the ChaosMeshWizard's study loop built in. A campaign file ([`spec`]) names a flow, the
//! chaos (Chaos Mesh files or Jsonnet templates with `${parameter}` placeholders, Chaos Toolkit
//! experiments, a fault schedule), a parameter [`grid`], seeds, the series to capture and how to analyse
//! them; [`run`] runs every point and seed as an independent sim run on a pool of threads (resuming where
//! it stopped), or one after another against a live instance; each run follows one timeline
//! ([`capture`]) against a [`target`], writing the captured [`series`] in the wizard's CSV format with the
//! ground truth of each fault; [`detect`] finds the chaos events as the wizard's notebook does and checks
//! them against that truth; [`analysis`] and [`stats`] summarise recovery times per point, list the runs
//! that deviate and fit the dose-response line; [`plot`] and [`report`] draw them and write `report.md`
//! and `report.html`.

pub mod analysis;
pub mod capture;
pub mod detect;
pub mod grid;
pub mod plot;
pub mod report;
pub mod run;
pub mod series;
pub mod spec;
pub mod stats;
pub mod target;

pub use analysis::{CampaignSummary, RunResult};
pub use spec::Campaign;
