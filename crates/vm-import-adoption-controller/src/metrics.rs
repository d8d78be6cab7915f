//! Prometheus metrics: what the controller decided, how long it took, and every API
//! write it issued, so that write amplification can be measured from `/metrics`.

use std::{sync::Arc, time::Instant};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::backoff::WatchHealth;

/// Outcome of one reconcile.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A VM was adopted (labelled) by this reconcile.
    Adopted,
    /// A missing record or label of an adopted VM was restored.
    Repaired,
    /// Nothing to write.
    Settled,
    /// The VM is not (yet) eligible.
    Ineligible,
    /// A write failed; the reconcile is retried with backoff.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Adopted => "adopted",
            Self::Repaired => "repaired",
            Self::Settled => "settled",
            Self::Ineligible => "ineligible",
            Self::Error => "error",
        }
    }
}

/// The kinds of API write the controller makes.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Write {
    /// Server-side apply of the adoption labels on a VM.
    VmLabels,
    /// Server-side apply of a tracking ConfigMap.
    TrackingConfigMap,
    /// An Event.
    Event,
    /// Automatic full adoption: creating a VM's VMAdoption.
    AdoptionCreate,
    /// Full adoption: a VMAdoption's status.
    AdoptionStatus,
    /// Full adoption: stopping the source VM.
    VmStop,
    /// Full adoption: deleting the source VM (after its disks moved).
    VmDelete,
    /// Full adoption: a PV patch (reclaim policy, claimRef).
    PvPatch,
    /// Full adoption: creating a claim.
    ClaimCreate,
    /// Full adoption: clearing an imported claim's owners.
    ClaimPatch,
    /// Full adoption: deleting an imported claim (its PV retained).
    ClaimDelete,
    /// Full adoption: creating a DataVolume.
    DataVolumeCreate,
    /// Full adoption: creating a HelmRelease.
    ReleaseCreate,
    /// Full adoption: patching a HelmRelease.
    ReleasePatch,
    /// The sync: applying a fully adopted VM's settings to its release's values.
    ReleaseSync,
    /// The sync: recording in a release what its VM shows with its values.
    SyncRecord,
}

impl Write {
    fn as_str(self) -> &'static str {
        match self {
            Self::VmLabels => "vm_labels",
            Self::TrackingConfigMap => "tracking_configmap",
            Self::Event => "event",
            Self::AdoptionCreate => "vmadoption_create",
            Self::AdoptionStatus => "vmadoption_status",
            Self::VmStop => "vm_stop",
            Self::VmDelete => "vm_delete",
            Self::PvPatch => "pv_patch",
            Self::ClaimCreate => "pvc_create",
            Self::ClaimPatch => "pvc_patch",
            Self::ClaimDelete => "pvc_delete",
            Self::DataVolumeCreate => "datavolume_create",
            Self::ReleaseCreate => "helmrelease_create",
            Self::ReleasePatch => "helmrelease_patch",
            Self::ReleaseSync => "helmrelease_sync",
            Self::SyncRecord => "sync_record",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabel {
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabel {
    watch: &'static str,
}

/// The names of the controller's watches, as metrics and logs show them.
pub const WATCHES: [&str; 5] = [
    "virtualmachines",
    "plans",
    "providers",
    "tracking_configmaps",
    "vmadoptions",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabel {
    kind: &'static str,
    outcome: &'static str,
}

/// All of the controller's metrics, registered under the `vm_import_` prefix.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    adoptions: Counter,
    refusals: Family<ReasonLabel, Counter>,
    duration: Histogram,
    writes: Family<WriteLabel, Counter>,
    leader: Gauge,
    rss: Gauge,
    peak_rss: Gauge,
    watch_failing: Family<WatchLabel, Gauge>,
    synced: Family<KeyLabel, Counter>,
    drift: Family<KindLabel, Counter>,
    /// How long each watch has been failing.
    pub watches: Arc<WatchHealth>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vm_import");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let adoptions = Counter::default();
        let refusals = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let writes = Family::<WriteLabel, Counter>::default();
        let leader = Gauge::default();
        let rss = Gauge::default();
        let peak_rss = Gauge::default();
        let watch_failing = Family::<WatchLabel, Gauge>::default();
        let synced = Family::<KeyLabel, Counter>::default();
        let drift = Family::<KindLabel, Counter>::default();
        registry.register(
            "sync_values",
            "Values keys the sync wrote to a fully adopted VM's release from the VM, by key",
            synced.clone(),
        );
        registry.register(
            "sync_drift",
            "Drift the sync found and could not write back (inexpressible settings, failed releases), by kind",
            drift.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles of imported VMs, by result",
            reconciles.clone(),
        );
        registry.register("adoptions", "VMs adopted (labelled) by this process", adoptions.clone());
        registry.register(
            "refusals",
            "Reconciles that found a VM ineligible, by reason",
            refusals.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            duration.clone(),
        );
        registry.register(
            "api_writes",
            "API write requests issued, by kind and outcome",
            writes.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of this process (Linux)",
            rss.clone(),
        );
        registry.register(
            "process_peak_resident_memory_bytes",
            "Peak resident memory of this process (Linux)",
            peak_rss.clone(),
        );
        registry.register(
            "watch_failing",
            "1 while a watch fails (it retries with backoff), by watch",
            watch_failing.clone(),
        );
        Self {
            registry,
            reconciles,
            adoptions,
            refusals,
            duration,
            writes,
            leader,
            rss,
            peak_rss,
            watch_failing,
            synced,
            drift,
            watches: Arc::default(),
        }
    }
}

/// Resident and peak resident memory, in bytes, from the text of `/proc/<pid>/status`.
pub fn parse_proc_status(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

impl Metrics {
    /// Records a finished reconcile that started at `started`.
    pub fn reconciled(&self, outcome: Outcome, started: Instant) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: outcome.as_str(),
            })
            .inc();
        self.duration.observe(started.elapsed().as_secs_f64());
        if outcome == Outcome::Adopted {
            self.adoptions.inc();
        }
    }

    /// Records an ineligible VM.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Records a values key the sync wrote from a VM.
    pub fn synced(&self, key: &str) {
        self.synced.get_or_create(&KeyLabel { key: key.to_owned() }).inc();
    }

    /// Records drift the sync reports: `inexpressible` or `release_failed`.
    pub fn drift(&self, kind: &'static str) {
        self.drift.get_or_create(&KindLabel { kind }).inc();
    }

    /// Records one write request, successful or not.
    pub fn wrote(&self, kind: Write, ok: bool) {
        self.writes
            .get_or_create(&WriteLabel {
                kind: kind.as_str(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let (rss, peak) = parse_proc_status(&status);
            let as_gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.rss.set(rss.map_or(0, as_gauge));
            self.peak_rss.set(peak.map_or(0, as_gauge));
        }
        for watch in WATCHES {
            self.watch_failing
                .get_or_create(&WatchLabel { watch })
                .set(i64::from(self.watches.is_failing(watch)));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Successful writes of `kind` so far.
    pub fn writes_ok(&self, kind: Write) -> u64 {
        self.writes
            .get_or_create(&WriteLabel {
                kind: kind.as_str(),
                outcome: "ok",
            })
            .get()
    }

    /// Reconciles with `outcome` so far.
    pub fn reconciles(&self, outcome: Outcome) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: outcome.as_str(),
            })
            .get()
    }

    /// Refusals for `reason` so far.
    pub fn refusals(&self, reason: &'static str) -> u64 {
        self.refusals.get_or_create(&ReasonLabel { reason }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status() {
        let text = "Name:\tx\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads: 3\n";
        assert_eq!(parse_proc_status(text), (Some(20480 * 1024), Some(40960 * 1024)));
        assert_eq!(parse_proc_status("garbage"), (None, None));
    }

    #[test]
    fn exposition_names() {
        let m = Metrics::default();
        m.reconciled(Outcome::Adopted, Instant::now());
        m.refused("namespace_mismatch");
        m.wrote(Write::VmLabels, true);
        m.wrote(Write::Event, false);
        m.set_leader(true);
        let text = m.render();
        for line in [
            "vm_import_reconciles_total{result=\"adopted\"} 1",
            "vm_import_adoptions_total 1",
            "vm_import_refusals_total{reason=\"namespace_mismatch\"} 1",
            "vm_import_api_writes_total{kind=\"vm_labels\",outcome=\"ok\"} 1",
            "vm_import_api_writes_total{kind=\"event\",outcome=\"error\"} 1",
            "vm_import_reconcile_duration_seconds_count 1",
            "vm_import_leader 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.writes_ok(Write::VmLabels), 1);
        assert_eq!(m.writes_ok(Write::TrackingConfigMap), 0);
    }
}
