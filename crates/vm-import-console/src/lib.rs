//! `vm-import-console`: the "Imported VMs" web console. Server-rendered pages list a
//! namespace's imported VMs with live status, show one in detail, start, stop and
//! restart it, open its screen (noVNC) and serial console (xterm.js), and request its
//! full adoption after a dry-run preview.
//!
//! It has no Kubernetes privileges of its own: every read and action uses the
//! requesting user's bearer token (forwarded by the platform's auth proxy), so RBAC
//! decides what each user sees and may do. A request without a token is refused, and
//! no token is logged or stored.
#![forbid(unsafe_code)]

pub mod api;
pub mod charts;
pub mod cli;
pub mod metrics;
pub mod pages;
pub mod picker;
pub mod server;
pub mod streams;
pub mod token;
pub mod ttl;
pub mod upstream;
pub mod view;
