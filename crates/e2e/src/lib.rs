//! Support for the opt-in end-to-end tests and the load harness, which run against a
//! real Kubernetes API server (for example kind) with the CRDs of KubeVirt and Forklift
//! installed, or installed here from the project's test data.
//!
//! - [`objects`]: objects shaped exactly like Forklift's output, and the Plan as the
//!   `vm-import` chart renders it;
//! - [`cluster`]: the opt-in gate, CRD installation and waiting helpers;
//! - [`handoff`]: a full adoption's world, and its data-safety checks;
//! - [`flux`]: a tenant's `cozystack-values`, forced upgrades and Ready, with the real
//!   helm-controller;
//! - [`harness`]: the real controller, run in-process;
//! - [`process`]: the controller as a process, its metrics, and the control plane's
//!   processes (for the fault tests);
//! - [`tenant`]: a test namespace holding what Forklift would create;
//! - [`kubevirt`], [`virt_api`]: KubeVirt's part, served through the aggregation layer,
//!   with [`rfb`] reading the keys a VNC viewer types;
//! - [`inventory`]: Forklift's inventory service and Cozystack's apps API, for New
//!   import;
//! - [`ceiling`]: the API server's own time for adoption's writes, for the load harness.
#![forbid(unsafe_code)]

pub mod ceiling;
pub mod cluster;
pub mod flux;
pub mod handoff;
pub mod harness;
pub mod inventory;
pub mod kubevirt;
pub mod objects;
pub mod process;
pub mod rfb;
pub mod tenant;
pub mod virt_api;
