//! The Pokémon order services of the reference's Kafka chaos experiments, as components of this process.
//!
//! An order API with its store, `DETECTIVE-PIKACHU` (fraud check, consumer group `poke-order-consumer`),
//! `ORDER-UPDATER`, `ORDER-REVERSED` and the `OCTILLERY` load generator, talking over the embedded bus
//! (topics `poke-orders`, `poke-orders-state`) exactly as the reference does — including its weaknesses
//! (dual write, poison pill), each with a selectable fix (outbox, dead-letter queue).

pub mod api;
pub mod catalog;
pub mod database;
pub mod detective;
pub mod fraud;
pub mod http;
pub mod load;
pub mod model;
pub mod outbox;
pub mod pages;
pub mod reverser;
pub mod service;
pub mod store;
pub mod updater;
