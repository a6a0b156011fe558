//! The Pokémon order services of the reference's Kafka chaos experiments, as components of this process.
//!
//! An order API with its store, `DETECTIVE-PIKACHU` (fraud check, consumer group `poke-order-consumer`),
//! `ORDER-UPDATER`, `ORDER-REVERSED` and the `OCTILLERY` load generator, talking over the embedded bus
//! (topics `poke-orders`, `poke-orders-state`) exactly as the reference does — including its weaknesses
//! (dual write, poison pill), each with a selectable fix (outbox, dead-letter queue).

pub mod catalog;
pub mod fraud;
pub mod http;
