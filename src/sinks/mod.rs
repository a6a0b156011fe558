//! Where records come to rest: `document-index` (`ELASTICSEARCH`, [`document_index`]), `file-store`
//! (`HADOOP`, [`file_store`]) and `quality-gate` (`NODE-RED`'s data-quality check with its flat file,
//! [`quality_gate`]).

pub mod document_index;
pub mod file_store;
pub mod quality_gate;
