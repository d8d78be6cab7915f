//! What the watch showed of each fully adopted VM between two of the sync's decisions
//! ([`vm_import_core::sync::Seen`]), shared between the watch that delivers the VM's
//! versions and the sync that reads and settles them.
//!
//! The sync's own read of a VM can come after helm-controller has already put an edit
//! back (an upgrade's apply, a forced upgrade, drift correction); the versions the
//! watch delivered in between still show it. Only VMs whose adoption has succeeded are
//! kept, and only until the sync's next decision: a few small maps per adopted VM.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use serde_json::Value;
use vm_import_core::sync::{ReleaseFacts, Seen, SyncDecision};

/// A VM: its namespace and name.
type Key = (String, String);

/// The versions seen of every adopted VM.
#[derive(Debug, Default)]
pub struct Journal {
    seen: Mutex<HashMap<Key, Seen>>,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Seen>> {
        // A panic while the lock was held cannot leave a map half-written.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a version of VM `name` in `namespace`, as the watch delivered it.
    pub fn push(&self, namespace: &str, name: &str, vm: &Value) {
        self.lock()
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default()
            .push(vm);
    }

    /// What was seen of the VM since the last decision.
    pub fn read(&self, namespace: &str, name: &str) -> Seen {
        self.lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// After `decision`, made from `read` and `release`: drops what it settled.
    pub fn settle(&self, namespace: &str, name: &str, read: &Seen, decision: &SyncDecision, release: &ReleaseFacts) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut seen = self.lock();
        // Versions pushed since the read stay for the next decision.
        let entry = seen.entry(key.clone()).or_default();
        entry.settle(read.versions.len(), decision, release);
        if *entry == Seen::default() {
            seen.remove(&key);
        }
    }

    /// Forgets VM `name` in `namespace` (its adoption is gone or no longer succeeded).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// How many VMs have versions kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no VM has versions kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use vm_import_core::sync::SyncDecision;

    use super::*;

    fn vm(cores: u32) -> Value {
        json!({
            "metadata": {"name": "vm-instance-web", "namespace": "tenant-a"},
            "spec": {"runStrategy": "Always", "template": {"spec": {
                "domain": {"cpu": {"cores": cores, "sockets": 1}, "resources": {"requests": {"memory": "4Gi"}},
                           "devices": {"disks": [], "interfaces": [{"name": "default", "bridge": {}}]}},
                "networks": [{"name": "default", "pod": {}}], "volumes": []
            }}}
        })
    }

    #[test]
    fn a_version_pushed_after_the_read_survives_the_decision() {
        let journal = Journal::default();
        journal.push("tenant-a", "vm-instance-web", &vm(2));
        let read = journal.read("tenant-a", "vm-instance-web");
        assert_eq!(read.versions.len(), 1);
        journal.push("tenant-a", "vm-instance-web", &vm(3));
        let release = ReleaseFacts {
            observed_generation: Some(4),
            ..Default::default()
        };
        let in_sync = SyncDecision::InSync {
            inexpressible: Vec::new(),
            record: None,
        };
        journal.settle("tenant-a", "vm-instance-web", &read, &in_sync, &release);
        let next = journal.read("tenant-a", "vm-instance-web");
        assert_eq!(next.floor, Some(4));
        assert_eq!(next.versions.len(), 1);
        assert_eq!(next.versions[0]["resources"]["cpu"], 3);
        // Settled with nothing left but the floor: kept, for the next versions.
        journal.settle("tenant-a", "vm-instance-web", &next, &in_sync, &release);
        assert_eq!(journal.len(), 1);
        journal.settle("tenant-a", "vm-instance-web", &next, &SyncDecision::NoVm, &release);
        assert!(journal.is_empty(), "a VM that is gone is forgotten");
        journal.push("tenant-b", "vm-instance-db", &vm(1));
        journal.forget("tenant-b", "vm-instance-db");
        assert!(journal.is_empty());
    }
}
