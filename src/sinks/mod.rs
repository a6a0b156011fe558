//! Where records come to rest: the `ELASTICSEARCH` document [`index`], the `HADOOP` [`file_store`],
//! and `NODE-RED`'s data-quality check with its flat file ([`quality_gate`]).

pub mod file_store;
pub mod index;
pub mod quality_gate;
