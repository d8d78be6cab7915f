//! Which watch events become reconcile triggers, and when.
//!
//! A watcher relists after an error (for example `410 Expired` once an API server has
//! restarted): `Init`, one `InitApply` per object, then `InitDone`. A reflector swaps its
//! store only at `InitDone`, so a reconcile triggered by an `InitApply` can look its
//! object up before the store has it, and the controller drops such a trigger ("not
//! found in local store"). Here every relisted object is held back and triggered once,
//! right after `InitDone`: the store then holds the complete new list, and every object
//! in it is reconciled, whether or not it changed. Outside relists an object triggers a
//! reconcile only when its fingerprint changes.
//!
//! Watch errors are logged here and never reach the controller: kube's controller backs
//! off its whole merged trigger stream on any error (up to 30 s and more), which would
//! stall every watch for one watch's failure. Each watch retries on its own backoff
//! (see `backoff`).

use std::{collections::HashMap, hash::Hash};

use futures::{Stream, StreamExt, future, stream};
use kube::{
    Resource,
    runtime::{reflector::ObjectRef, watcher},
};

/// What an applied object is compared by; `None` triggers on every event.
pub type Fingerprint<K> = fn(&K) -> Option<u64>;

/// The state between two events.
struct State<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    seen: HashMap<ObjectRef<K>, u64>,
    relist: Option<Vec<K>>,
}

/// The objects `event` triggers, given what came before it.
fn step<K>(state: &mut State<K>, event: watcher::Event<K>, fingerprint: Fingerprint<K>, deletes: bool) -> Vec<K>
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    match event {
        watcher::Event::Apply(obj) => {
            let key = ObjectRef::from_obj(&obj);
            match fingerprint(&obj) {
                Some(fp) if state.seen.get(&key) == Some(&fp) => Vec::new(),
                Some(fp) => {
                    state.seen.insert(key, fp);
                    vec![obj]
                }
                None => vec![obj],
            }
        }
        watcher::Event::Delete(obj) => {
            state.seen.remove(&ObjectRef::from_obj(&obj));
            if deletes { vec![obj] } else { Vec::new() }
        }
        watcher::Event::Init => {
            state.relist = Some(Vec::new());
            Vec::new()
        }
        watcher::Event::InitApply(obj) => {
            match state.relist.as_mut() {
                Some(relist) => relist.push(obj),
                // An `InitApply` without `Init` is not sent by kube's watcher; were it,
                // triggering at once is the safe reading.
                None => return vec![obj],
            }
            Vec::new()
        }
        watcher::Event::InitDone => {
            let relisted = state.relist.take().unwrap_or_default();
            state.seen = relisted
                .iter()
                .filter_map(|obj| Some((ObjectRef::from_obj(obj), fingerprint(obj)?)))
                .collect();
            relisted
        }
    }
}

/// The reconcile triggers of the reflected watch `stream` named `watch`: applied objects
/// whose fingerprint changed, deleted objects when `deletes`, and after each (re)list
/// every listed object, once the list is complete. Watch errors are logged, not passed
/// on.
pub fn triggers<K, E, S>(
    watch: &'static str,
    stream: S,
    fingerprint: Fingerprint<K>,
    deletes: bool,
) -> impl Stream<Item = Result<K, E>>
where
    K: Resource + Send + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send,
    E: std::fmt::Display + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, E>>,
{
    let state = State {
        seen: HashMap::new(),
        relist: None,
    };
    stream
        .scan(state, move |state, event| {
            let out: Vec<Result<K, E>> = match event {
                Ok(event) => step(state, event, fingerprint, deletes).into_iter().map(Ok).collect(),
                Err(e) => {
                    tracing::warn!(watch, error = %e, "watch failed; retrying with backoff");
                    Vec::new()
                }
            };
            future::ready(Some(stream::iter(out)))
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn cm(name: &str, version: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
            "data": {"v": version}
        }))
        .expect("configmap")
    }

    fn by_data(cm: &ConfigMap) -> Option<u64> {
        cm.data.as_ref()?.get("v")?.parse().ok()
    }

    fn names(objs: Vec<ConfigMap>) -> Vec<String> {
        objs.into_iter().filter_map(|o| o.metadata.name).collect()
    }

    fn run(events: Vec<watcher::Event<ConfigMap>>, deletes: bool) -> Vec<Vec<String>> {
        let mut state = State {
            seen: HashMap::new(),
            relist: None,
        };
        events
            .into_iter()
            .map(|e| names(step(&mut state, e, by_data, deletes)))
            .collect()
    }

    #[test]
    fn a_relist_triggers_every_listed_object_only_once_it_is_complete() {
        use watcher::Event::*;
        let out = run(
            vec![
                Init,
                InitApply(cm("a", "1")),
                InitDone,
                Apply(cm("a", "1")), // unchanged: no trigger
                Apply(cm("a", "2")),
                // The watch expired; the relist has a and a newcomer b, and a trigger for b
                // arrives mid-relist as an InitApply.
                Init,
                InitApply(cm("a", "2")),
                InitApply(cm("b", "1")),
                InitDone,
                Apply(cm("b", "1")),
            ],
            false,
        );
        let empty: Vec<String> = Vec::new();
        assert_eq!(out[0], empty);
        assert_eq!(out[1], empty, "nothing before the list is complete");
        assert_eq!(out[2], vec!["a"]);
        assert_eq!(out[3], empty);
        assert_eq!(out[4], vec!["a"]);
        assert_eq!(out[5..8], [empty.clone(), empty.clone(), empty.clone()]);
        assert_eq!(out[8], vec!["a", "b"], "every relisted object, changed or not");
        assert_eq!(out[9], empty, "the relist recorded b's fingerprint");
    }

    #[test]
    fn deletes_trigger_only_when_asked_and_forget_the_fingerprint() {
        use watcher::Event::*;
        let out = run(
            vec![Apply(cm("a", "1")), Delete(cm("a", "1")), Apply(cm("a", "1"))],
            false,
        );
        assert_eq!(out, vec![vec!["a".to_owned()], vec![], vec!["a".to_owned()]]);
        let out = run(vec![Delete(cm("a", "1"))], true);
        assert_eq!(out, vec![vec!["a".to_owned()]]);
    }

    #[tokio::test]
    async fn errors_stop_here() {
        use watcher::Event::*;
        let events: Vec<Result<watcher::Event<ConfigMap>, &str>> =
            vec![Ok(Init), Ok(InitApply(cm("a", "1"))), Err("expired"), Ok(InitDone)];
        let out: Vec<Result<String, &str>> = triggers("configmaps", stream::iter(events), by_data, false)
            .map(|r| r.map(|o| o.metadata.name.unwrap_or_default()))
            .collect()
            .await;
        assert_eq!(out, vec![Ok("a".to_owned())]);
    }
}
