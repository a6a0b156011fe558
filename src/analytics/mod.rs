//! Batch analytics over stored records: [`kmeans`] (linfa) and the `SPARK` job around it ([`spark`]).

pub mod kmeans;
pub mod spark;
