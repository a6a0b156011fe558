//! Batch analytics over stored records: the `kmeans` component (`SPARK`, [`kmeans`]) and its linfa model.

pub mod kmeans;
