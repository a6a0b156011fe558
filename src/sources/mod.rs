//! Where records enter the pipeline: the GNFUV [`dataset`] (and its seeded [`synth`]etic twin) and the
//! `sensor-replay` component that replays it ([`sensor_replay`]).

pub mod dataset;
pub mod sensor_replay;
pub mod synth;
