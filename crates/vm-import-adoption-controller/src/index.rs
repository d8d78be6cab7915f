//! In-memory indexes of the parsed facts the reconciler needs from Plans and Providers.
//!
//! Plans can be large (one status entry, with its pipeline, per VM), so the controller
//! does not cache them whole: each watch event is parsed once into the small
//! [`PlanFacts`] the rules need, keyed by the Plan's UID, and the raw object is dropped.
//! Providers are reduced to their `spec.type`, keyed by namespace and name.
//!
//! An index follows the watcher's relist protocol (`Init`, `InitApply`…, `InitDone`):
//! a relist replaces the contents atomically, and the index reports ready after the
//! first complete list. It is fed by [`Index::apply`] and is tested without a server.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use kube::runtime::watcher;
use serde_json::Value;
use vm_import_core::PlanFacts;

use crate::{
    gate::Gate,
    resources::{Plan, Provider},
};

/// An object that contributes one entry to an [`Index`].
pub trait Indexed {
    /// What the index keeps for it.
    type Value: Send + Sync + 'static;
    /// Its key, or `None` for an object that cannot be keyed (it is then not indexed).
    fn index_key(&self) -> Option<String>;
    /// The value kept for it.
    fn index_value(&self) -> Self::Value;
}

/// Key of a namespaced object: `namespace/name`.
pub fn namespaced_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Indexed for Plan {
    type Value = PlanFacts;

    fn index_key(&self) -> Option<String> {
        self.metadata.uid.clone().filter(|uid| !uid.is_empty())
    }

    fn index_value(&self) -> PlanFacts {
        let meta = &self.metadata;
        PlanFacts::parse(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default(),
            &meta.annotations.clone().unwrap_or_default(),
            &self.spec,
            &self.status,
        )
    }
}

impl Indexed for Provider {
    /// The Provider's `spec.type`, when it is a string.
    type Value = Option<String>;

    fn index_key(&self) -> Option<String> {
        Some(namespaced_key(
            self.metadata.namespace.as_deref()?,
            self.metadata.name.as_deref()?,
        ))
    }

    fn index_value(&self) -> Option<String> {
        self.spec.get("type").and_then(Value::as_str).map(str::to_owned)
    }
}

#[derive(Default)]
struct State<V> {
    entries: HashMap<String, Arc<V>>,
    relist: Option<HashMap<String, Arc<V>>>,
}

/// A watch-fed map from key to parsed value.
pub struct Index<K: Indexed> {
    state: RwLock<State<K::Value>>,
    ready: Gate,
}

impl<K: Indexed> Default for Index<K> {
    fn default() -> Self {
        Self {
            state: RwLock::new(State {
                entries: HashMap::new(),
                relist: None,
            }),
            ready: Gate::default(),
        }
    }
}

impl<K: Indexed> Index<K> {
    /// Folds one watcher event into the index.
    pub fn apply(&self, event: &watcher::Event<K>) {
        let Ok(mut state) = self.state.write() else {
            return; // poisoned only if a writer panicked; the value is never half-written
        };
        match event {
            watcher::Event::Apply(obj) => {
                if let Some(key) = obj.index_key() {
                    state.entries.insert(key, Arc::new(obj.index_value()));
                }
            }
            watcher::Event::Delete(obj) => {
                if let Some(key) = obj.index_key() {
                    state.entries.remove(&key);
                }
            }
            watcher::Event::Init => state.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let (Some(key), Some(relist)) = (obj.index_key(), state.relist.as_mut()) {
                    relist.insert(key, Arc::new(obj.index_value()));
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = state.relist.take() {
                    state.entries = relist;
                }
                drop(state);
                self.ready.open();
            }
        }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<Arc<K::Value>> {
        self.state.read().ok()?.entries.get(key).cloned()
    }

    /// The first value matching `pred`: a scan, for the rare lookup by something other
    /// than the key (a few hundred Plans at most, in memory).
    pub fn find(&self, pred: impl Fn(&K::Value) -> bool) -> Option<Arc<K::Value>> {
        self.state.read().ok()?.entries.values().find(|v| pred(v)).cloned()
    }

    /// How many objects are indexed.
    pub fn len(&self) -> usize {
        self.state.read().map(|s| s.entries.len()).unwrap_or_default()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first complete list has been indexed.
    pub fn is_ready(&self) -> bool {
        self.ready.is_open()
    }

    /// Resolves once the first complete list has been indexed.
    pub async fn wait_until_ready(&self) {
        self.ready.opened().await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn plan(uid: &str, enabled: &str) -> Plan {
        Plan {
            metadata: ObjectMeta {
                name: Some(format!("plan-{uid}")),
                namespace: Some("tenant-a".into()),
                uid: Some(uid.into()),
                annotations: Some([("vm-import.cozystack.io/adoption-enabled".to_owned(), enabled.to_owned())].into()),
                ..Default::default()
            },
            spec: json!({}),
            status: json!("malformed on purpose"),
        }
    }

    #[test]
    fn apply_and_delete() {
        let index = Index::<Plan>::default();
        index.apply(&watcher::Event::Apply(plan("u1", "true")));
        let facts = index.get("u1").expect("indexed");
        assert!(facts.adoption_enabled);
        assert!(facts.migration.is_err(), "a malformed status is indexed, not dropped");
        index.apply(&watcher::Event::Apply(plan("u1", "false")));
        assert!(!index.get("u1").expect("updated").adoption_enabled);
        index.apply(&watcher::Event::Delete(plan("u1", "false")));
        assert!(index.get("u1").is_none());
    }

    #[test]
    fn relist_replaces_atomically_and_marks_ready() {
        let index = Index::<Plan>::default();
        assert!(!index.is_ready());
        index.apply(&watcher::Event::Apply(plan("stale", "true")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(plan("u1", "true")));
        assert!(
            index.get("stale").is_some(),
            "old contents stay until the relist is complete"
        );
        assert!(index.get("u1").is_none());
        index.apply(&watcher::Event::InitDone);
        assert!(index.is_ready());
        assert!(index.get("stale").is_none());
        assert!(index.get("u1").is_some());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn unkeyed_objects_are_ignored() {
        let index = Index::<Plan>::default();
        let mut no_uid = plan("x", "true");
        no_uid.metadata.uid = None;
        index.apply(&watcher::Event::Apply(no_uid));
        assert!(index.is_empty());
    }

    #[test]
    fn provider_type() {
        let index = Index::<Provider>::default();
        let provider = |ty: Value| Provider {
            metadata: ObjectMeta {
                name: Some("vcenter".into()),
                namespace: Some("tenant-a".into()),
                ..Default::default()
            },
            spec: json!({"type": ty}),
            status: Value::Null,
        };
        index.apply(&watcher::Event::Apply(provider(json!("vsphere"))));
        assert_eq!(
            index.get("tenant-a/vcenter").as_deref(),
            Some(&Some("vsphere".to_owned()))
        );
        index.apply(&watcher::Event::Apply(provider(json!(5))));
        assert_eq!(index.get("tenant-a/vcenter").as_deref(), Some(&None));
    }

    #[tokio::test]
    async fn readiness_resolves() {
        let index = Arc::new(Index::<Provider>::default());
        let waiter = tokio::spawn({
            let index = index.clone();
            async move { index.wait_until_ready().await }
        });
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("ready in time")
            .expect("task");
    }
}
