//! How messages move: the [`envelope`] they travel in, the [`link`]s every hop goes through (and
//! where every network fault is applied), and [`mqtt`] in its three forms.

pub mod envelope;
pub mod link;
pub mod mqtt;
