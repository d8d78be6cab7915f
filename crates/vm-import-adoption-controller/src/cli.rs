//! Command-line flags. Every flag has an environment-variable fallback, so the chart
//! can configure the controller through `env:` alone.

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};
use vm_import_core::apps::{ChartRef, Charts};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Adopts Forklift-imported KubeVirt VMs into Cozystack.
#[derive(Clone, Debug, Parser)]
#[command(name = "vm-import-adoption-controller", version, about)]
pub struct Args {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "VM_IMPORT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "VM_IMPORT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in tracing-subscriber's EnvFilter syntax.
    #[arg(long, env = "VM_IMPORT_LOG", default_value = "info")]
    pub log_filter: String,

    /// Take a Lease before reconciling, so that only one replica acts at a time.
    #[arg(long, env = "VM_IMPORT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "VM_IMPORT_LEASE_NAME", default_value = "vm-import-adoption-controller")]
    pub lease_name: String,

    /// Namespace of the Lease; defaults to the kubeconfig's (or the Pod's) namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease; defaults to `$HOSTNAME`, else a name made from
    /// the process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "VM_IMPORT_LEASE_DURATION", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=600))]
    pub lease_duration: u64,

    /// How many VMs may be reconciled at once. A reconcile is at most three small writes,
    /// so the API server, not the controller, sets the pace: the load harness found it
    /// fastest at 128 requests in flight (of 8, 32 and 128), and a burst of 1,000
    /// adoptions took 1.36-1.41 times the server's own time at 32, 1.13-1.41 times at 128.
    #[arg(long, env = "VM_IMPORT_CONCURRENCY", default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Seconds between two safety re-syncs, which reconcile every watched VM again from
    /// the caches (0: never). Work lost for any reason is redone within this time; a
    /// settled cluster costs no write.
    #[arg(long, env = "VM_IMPORT_RESYNC_INTERVAL", default_value_t = 600)]
    pub resync_interval: u64,

    /// Run full adoption: reconcile VMAdoptions (needs the VMAdoption CRD and the
    /// chart's full-adoption RBAC).
    #[arg(long, env = "VM_IMPORT_FULL_ADOPTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub full_adoption: bool,

    /// Chart of the VMInstance apps full adoption creates, as `Kind:namespace/name`.
    #[arg(long, env = "VM_IMPORT_VM_INSTANCE_CHART", value_parser = ChartRef::parse,
          default_value_t = Charts::default().instance)]
    pub vm_instance_chart: ChartRef,

    /// Chart of the VMDisk apps full adoption creates, as `Kind:namespace/name`.
    #[arg(long, env = "VM_IMPORT_VM_DISK_CHART", value_parser = ChartRef::parse,
          default_value_t = Charts::default().disk)]
    pub vm_disk_chart: ChartRef,

    /// Runtime worker threads. The work is I/O-bound; a fixed small number keeps memory
    /// independent of the node's core count.
    #[arg(long, env = "VM_IMPORT_WORKER_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["c"]).expect("defaults parse");
        assert!(args.leader_election);
        assert_eq!(args.http_addr.port(), 8080);
        assert_eq!(args.concurrency, 128);
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.worker_threads, 2);
        assert!(args.full_adoption);
        assert_eq!(args.vm_instance_chart, Charts::default().instance);
        assert_eq!(args.vm_disk_chart, Charts::default().disk);
    }

    #[test]
    fn flags() {
        let args = Args::try_parse_from([
            "c",
            "--leader-election=false",
            "--log-format",
            "json",
            "--http-addr",
            "127.0.0.1:9",
            "--concurrency",
            "4",
        ])
        .expect("parse");
        assert!(!args.leader_election);
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.concurrency, 4);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for bad in [
            vec!["c", "--http-addr", "nowhere"],
            vec!["c", "--log-format", "xml"],
            vec!["c", "--concurrency", "0"],
            vec!["c", "--lease-duration", "1"],
            vec!["c", "--leader-election", "maybe"],
            vec!["c", "--worker-threads", "0"],
            vec!["c", "--full-adoption", "maybe"],
            vec!["c", "--vm-disk-chart", "cozy-system/vm-disk"],
        ] {
            let err = Args::try_parse_from(&bad).expect_err("rejected");
            assert!(err.to_string().contains("invalid value"), "{bad:?}: {err}");
        }
    }
}
