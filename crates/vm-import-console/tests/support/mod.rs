//! Test support for the console.
pub mod prometheus;
pub mod standin;
pub mod vsphere;
