//! Where records enter the pipeline: the GNFUV [`dataset`] (and its seeded [`synth`]etic twin) and the
//! `SENSOR` that replays it ([`sensor`]).

pub mod dataset;
pub mod sensor;
pub mod synth;
