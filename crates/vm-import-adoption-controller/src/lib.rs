//! `vm-import-adoption-controller`: adopts the VirtualMachines that an adoption-enabled
//! Forklift import created into Cozystack, by labelling them and recording each one in
//! a tracking ConfigMap; and, for each `VMAdoption` requested, turns one such VM into a
//! Cozystack VMInstance with VMDisks ([`full`]), then keeps that VMInstance's values in
//! step with the VM ([`sync`]).
//!
//! The decisions live in the pure `vm-import-core` crate. This crate is the Kubernetes
//! edge: it watches (metadata-only where it can), indexes, reconciles and writes, and it
//! serves metrics and health. `main` only wires these together.
#![forbid(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod cli;
pub mod controller;
pub mod events;
pub mod expectations;
pub mod full;
pub mod gate;
pub mod http;
pub mod index;
pub mod journal;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod resources;
pub mod sync;
pub mod triggers;
pub mod vmadoption;
pub mod writes;
