//! Stages that consume records and pass on something: `FLINK`'s count-window averages
//! ([`window_average`]) and `NIFI`'s MQTT-to-HDFS flow ([`ingest`]).

pub mod ingest;
pub mod window_average;
