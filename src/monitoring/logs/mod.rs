//! Fluentd-compatible log routing: events, tag patterns, the configuration language, the router, and the
//! Forward (TCP) and HTTP inputs that let real Fluentd/Fluent Bit forwarders and logger libraries send to us.

pub mod config;
pub mod event;
pub mod forward;
pub mod forward_auth;
pub mod http_input;
pub mod router;
pub mod tag;
