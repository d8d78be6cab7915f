//! `kubectl vm-import`: a kubectl plugin for Cozystack tenants and operators. It lists
//! imported VMs with their adoption level, requests full adoption (a `VMAdoption`),
//! shows what a full adoption would create without changing anything, and follows one
//! to its end, and opens a VM's screen or serial console (the console's page, or
//! virtctl). It uses the user's kubeconfig and permissions, nothing else. What it does
//! lives in the `vm-import-client` library, which the console shares; this crate only
//! parses arguments.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod screen;
