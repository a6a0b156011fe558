//! The Pokémon order services of the reference's Kafka chaos experiments, as components of this process.
//!
//! One file (or folder) per kind: `order-store` ([`order_store`]), `order-api` ([`order_api`]),
//! `outbox-relay` ([`outbox_relay`]), `fraud-detector` (`DETECTIVE-PIKACHU`, group `poke-order-consumer`,
//! [`fraud_detector`]), `order-updater` ([`order_updater`]), `order-reverser` ([`order_reverser`]) and
//! `load-generator` (`OCTILLERY`, [`load_generator`]), talking over a `kafka-cluster` (topics
//! `poke-orders`, `poke-orders-state`) exactly as the reference does — including its weaknesses (dual
//! write, poison pill), each with a selectable fix (outbox, dead-letter queue). What they share: the
//! order [`model`], the [`store`], the [`service`] context and ledger, the [`fraud`] rule, the shipped
//! name lists ([`catalog`]) and the API client ([`http`]).

pub mod catalog;
pub mod fraud;
pub mod fraud_detector;
pub mod http;
pub mod load_generator;
pub mod model;
pub mod order_api;
pub mod order_reverser;
pub mod order_store;
pub mod order_updater;
pub mod outbox_relay;
pub mod service;
pub mod store;
