//! Components that consume records and pass on something: `count-window-average` (`FLINK`'s count-window
//! averages, [`count_window_average`]) and `mqtt-ingest` (`NIFI`'s MQTT-to-HDFS flow, [`mqtt_ingest`]).

pub mod count_window_average;
pub mod mqtt_ingest;
