//! The operations `kubectl vm-import` and the "Imported VMs" console both perform, with
//! the user's own kubeconfig or token and nothing else: list imported VMs with their
//! adoption level, start/stop/restart one, and build, preview (dry run) and create a
//! `VMAdoption`, then follow it. No argument parser leaks in: the plugin and the console
//! turn their own input into the plain types here.
//!
//! - [`imports`]: where each VM of a namespace's Forklift imports is;
//! - [`inventory`]: a vSphere source's VMs, networks and datastores, from Forklift's
//!   inventory service;
//! - [`newimport`]: a new import as chosen, checked, and the `VMImport` it creates;
//! - [`ops`]: the calls to the API server, and their one-line errors;
//! - [`text`]: what they print: tables, status, progress, the dry run's YAML.
#![forbid(unsafe_code)]

pub mod imports;
pub mod inventory;
pub mod newimport;
pub mod ops;
pub mod text;

pub use ops::{AdoptRequest, ClientError, Connection, Output};
