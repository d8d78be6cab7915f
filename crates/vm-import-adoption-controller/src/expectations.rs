//! Bridges the gap between a write and the watch event that reports it.
//!
//! The reconciler decides from caches fed by watches. Right after it writes an object,
//! the cache may still hold the old version for a few milliseconds; a reconcile that ran
//! in that window would see the write as missing and repeat it. Each write therefore
//! records the `resourceVersion` it was based on (or its absence). While the cache
//! still shows exactly that version, the reconciler trusts the write instead of the
//! cache. The first watch event for the object with another version, of any kind,
//! clears the expectation, so a later change or deletion by someone else is never
//! masked. An event that still carries the version the write was based on (a relist
//! served from before the write) leaves it in place.

use std::{collections::HashMap, sync::Mutex};

/// Outstanding writes, keyed by object (`kind/namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Option<String>>>,
}

impl Expectations {
    /// Records that `key` was written while the cache showed `based_on`.
    pub fn wrote(&self, key: &str, based_on: Option<&str>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(key.to_owned(), based_on.map(str::to_owned));
        }
    }

    /// A watch event arrived for `key` with version `version`: unless that is still the
    /// version the write was based on, the cache is now at least as new as the write.
    pub fn observed(&self, key: &str, version: Option<&str>) {
        if let Ok(mut pending) = self.pending.lock()
            && pending.get(key).is_some_and(|based_on| based_on.as_deref() != version)
        {
            pending.remove(key);
        }
    }

    /// Whether the cache's view of `key` (its `resourceVersion`, or `None` when absent)
    /// predates a write this controller already made.
    pub fn cache_is_stale(&self, key: &str, cached: Option<&str>) -> bool {
        self.pending
            .lock()
            .ok()
            .and_then(|p| p.get(key).map(|based_on| based_on.as_deref() == cached))
            .unwrap_or(false)
    }

    /// How many writes are not yet observed.
    pub fn len(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or_default()
    }

    /// Whether every write has been observed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_until_observed() {
        let e = Expectations::default();
        assert!(!e.cache_is_stale("cm/ns/a", None), "no write, no staleness");
        e.wrote("cm/ns/a", None);
        assert!(e.cache_is_stale("cm/ns/a", None), "cache still shows the object absent");
        assert!(!e.cache_is_stale("cm/ns/a", Some("12")), "cache already moved on");
        e.observed("cm/ns/a", Some("12"));
        assert!(
            !e.cache_is_stale("cm/ns/a", None),
            "a deletion after the write is seen as such"
        );
        assert!(e.is_empty());
    }

    #[test]
    fn a_relist_from_before_the_write_does_not_clear_it() {
        let e = Expectations::default();
        e.wrote("vm/ns/a", Some("7"));
        e.observed("vm/ns/a", Some("7")); // relisted at the version the write was based on
        assert!(e.cache_is_stale("vm/ns/a", Some("7")), "still the old version");
        e.observed("vm/ns/a", Some("9"));
        assert!(!e.cache_is_stale("vm/ns/a", Some("7")));
        assert!(e.is_empty());
    }

    #[test]
    fn update_based_on_a_version() {
        let e = Expectations::default();
        e.wrote("vm/ns/a", Some("7"));
        assert!(e.cache_is_stale("vm/ns/a", Some("7")));
        assert!(!e.cache_is_stale("vm/ns/a", Some("8")));
        assert!(!e.cache_is_stale("vm/ns/b", Some("7")));
        assert_eq!(e.len(), 1);
    }
}
