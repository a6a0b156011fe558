//! The integration suite: one test binary (one link, one copy of the dependencies on disk) holding every
//! end-to-end test. Each module is one area; `common` holds the helpers they share. The optional real-Kafka
//! tests live apart in `tests/kafka.rs`, built only with `--features kafka`.

mod common;

mod architecture;
mod campaign;
mod cli;
mod dashboard;
mod experiments;
mod faults;
mod forward_fluent_logger;
mod fuzz;
mod live;
mod mesh;
mod monitoring;
mod order_contract;
mod orders;
mod orders_live;
mod paho;
mod process_mining;
mod sim;
