//! How a failed watch is retried, and how long it has been failing.
//!
//! Each watch retries after 250 ms, doubling up to a cap of [`CAP`], each delay with up
//! to 25 % jitter, and starts again from 250 ms after the first event that succeeds. So
//! once an API server answers again, every watch is back within [`CAP`] at most. A
//! watch that keeps failing for longer than the cap is reported by
//! [`WatchHealth::stalled`], which `/readyz` and the `vm_import_watch_failing` metric
//! show.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kube::runtime::utils::Backoff;

/// The first retry's delay.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest delay between two attempts.
pub const CAP: Duration = Duration::from_secs(4);

/// The delay before attempt `attempt` (1 for the first retry), before jitter.
pub fn delay(attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    FIRST.saturating_mul(factor).min(CAP)
}

/// `delay` lengthened by `fraction` (0.0 to 1.0) of a quarter of it.
pub fn with_jitter(delay: Duration, fraction: f64) -> Duration {
    delay + delay.mul_f64(0.25 * fraction.clamp(0.0, 1.0))
}

/// Since when each failing watch has been failing.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing_since: Mutex<HashMap<&'static str, Instant>>,
}

impl WatchHealth {
    fn failed(&self, watch: &'static str) {
        if let Ok(mut failing) = self.failing_since.lock() {
            failing.entry(watch).or_insert_with(Instant::now);
        }
    }

    fn recovered(&self, watch: &'static str) {
        if let Ok(mut failing) = self.failing_since.lock() {
            failing.remove(watch);
        }
    }

    /// The watches that have been failing for longer than `longer_than`, sorted.
    pub fn stalled(&self, longer_than: Duration) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .failing_since
            .lock()
            .map(|f| {
                f.iter()
                    .filter(|(_, since)| since.elapsed() > longer_than)
                    .map(|(w, _)| *w)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    /// Whether `watch` is failing now.
    pub fn is_failing(&self, watch: &'static str) -> bool {
        self.failing_since.lock().is_ok_and(|f| f.contains_key(watch))
    }
}

/// The backoff of one watch; it reports to a shared [`WatchHealth`].
pub struct WatchBackoff {
    watch: &'static str,
    attempt: u32,
    health: Arc<WatchHealth>,
    jitter: RandomState,
}

impl WatchBackoff {
    /// The backoff of the watch named `watch`.
    pub fn new(watch: &'static str, health: Arc<WatchHealth>) -> Self {
        Self {
            watch,
            attempt: 0,
            health,
            jitter: RandomState::new(),
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.attempt = self.attempt.saturating_add(1);
        self.health.failed(self.watch);
        let fraction = (self.jitter.hash_one(self.attempt) % 1000) as f64 / 1000.0;
        Some(with_jitter(delay(self.attempt), fraction))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        if self.attempt > 0 {
            self.attempt = 0;
            self.health.recovered(self.watch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap() {
        let ms: Vec<u128> = (1..=7).map(|a| delay(a).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(delay(u32::MAX), CAP);
        assert_eq!(with_jitter(CAP, 1.0), Duration::from_secs(5));
        assert_eq!(with_jitter(CAP, 7.0), Duration::from_secs(5), "clamped");
    }

    #[test]
    fn a_success_resets_the_delay_and_the_health() {
        let health = Arc::new(WatchHealth::default());
        let mut b = WatchBackoff::new("vms", health.clone());
        let first: Vec<Duration> = b.by_ref().take(6).collect();
        assert!(first[0] >= FIRST && first[0] <= with_jitter(FIRST, 1.0));
        assert!(first[5] >= CAP && first[5] <= with_jitter(CAP, 1.0));
        assert!(health.is_failing("vms"));
        assert_eq!(health.stalled(Duration::ZERO), vec!["vms"]);
        assert!(health.stalled(Duration::from_secs(60)).is_empty());
        b.reset();
        assert!(!health.is_failing("vms"));
        let again = b.next().expect("a delay");
        assert!(again <= with_jitter(FIRST, 1.0), "starts again from the first delay");
    }
}
