//! Test support for the console.
pub mod standin;
