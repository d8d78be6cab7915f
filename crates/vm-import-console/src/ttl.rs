//! A small shared cache whose answers expire: the console's SelfSubjectAccessReview
//! answers and metrics queries are each reused for a short while, then asked anew. It
//! never grows without bound: past a size, expired answers are dropped on insert.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Answers by key, each kept for `ttl`; clones share the answers.
#[derive(Clone)]
pub struct Ttl<K, V> {
    ttl: Duration,
    prune_at: usize,
    answers: Arc<Mutex<HashMap<K, (Instant, V)>>>,
}

impl<K: Eq + Hash, V: Clone> Ttl<K, V> {
    /// An empty cache keeping answers for `ttl`, pruned once it holds `prune_at`.
    pub fn new(ttl: Duration, prune_at: usize) -> Self {
        Self {
            ttl,
            prune_at,
            answers: Arc::default(),
        }
    }

    /// The answer for `key`, if one is younger than the TTL.
    pub fn get(&self, key: &K) -> Option<V> {
        let answers = self.answers.lock().ok()?;
        let (at, value) = answers.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value` as the answer for `key`.
    pub fn put(&self, key: K, value: V) {
        if let Ok(mut answers) = self.answers.lock() {
            if answers.len() >= self.prune_at {
                let ttl = self.ttl;
                answers.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            answers.insert(key, (Instant::now(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_are_pruned() {
        let cache = Ttl::new(Duration::from_millis(30), 2);
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None, "expired");
        cache.put("b", 2);
        cache.put("c", 3);
        assert_eq!(cache.answers.lock().map(|a| a.len()).unwrap_or_default(), 2, "a pruned");
    }
}
