//! In-process benchmark of the controller's own cost: the production wiring fed by
//! in-memory watch streams, writing to a mock API server that answers after a fixed
//! latency. It needs no cluster, so it measures the controller alone, not an API server;
//! the load harness (`vm-import-load`) measures the real thing.
//!
//! ```sh
//! cargo run --release -p vm-import-adoption-controller --example bench -- 10 1000 5
//! #                                        Plans ─┘  VMs per Plan ─┘   └─ API latency (ms)
//! ```
//! It lists P×V VMs (all watched), then marks one Plan succeeded and times the adoption of
//! its V VMs; it reports writes per adoption and the process's resident memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kube::runtime::watcher;
use support::*;
use vm_import_adoption_controller::metrics::{Outcome, Write, parse_proc_status};

fn send<K>(
    tx: &futures::channel::mpsc::UnboundedSender<Result<watcher::Event<K>, watcher::Error>>,
    e: watcher::Event<K>,
) {
    tx.unbounded_send(Ok(e)).unwrap();
}

fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let (rss, peak) = parse_proc_status(&status);
    let mib = |b: Option<u64>| b.unwrap_or(0) as f64 / 1048576.0;
    (mib(rss), mib(peak))
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let (plans, per_plan, latency_ms) = (
        args.first().copied().unwrap_or(10),
        args.get(1).copied().unwrap_or(1000),
        args.get(2).copied().unwrap_or(5),
    );
    if std::env::var("BENCH_TRACE").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter("vm_import_adoption_controller=debug,kube_runtime=debug")
            .with_ansi(false)
            .init();
    }
    let (client, api) = MockApi::start_with_latency(Duration::from_millis(latency_ms));
    let (rss0, _) = rss();
    let (feeds, ctx, stream) = in_memory_controller(client, 32, std::future::pending());
    let Feeds {
        vms: vms_tx,
        plans: plans_tx,
        providers: providers_tx,
        records: records_tx,
    } = feeds;
    let stream_errors = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    tokio::spawn({
        let stream_errors = stream_errors.clone();
        futures::StreamExt::for_each(stream, move |r| {
            if let Err(e) = r {
                let key: String = e.to_string().chars().take(60).collect();
                *stream_errors.lock().unwrap().entry(key).or_default() += 1;
            }
            std::future::ready(())
        })
    });

    let ns = "tenant-bench";
    let ids = |p: u64| (0..per_plan).map(move |v| format!("vm-{p}-{v}")).collect::<Vec<_>>();
    send(&vms_tx, watcher::Event::Init);
    for p in 0..plans {
        for id in ids(p) {
            let mut labels = forklift_labels(&format!("plan-{p}"), &id);
            labels.insert("plan-name".into(), format!("import-{p}"));
            labels.insert("plan-namespace".into(), ns.into());
            let mut vm = vm(ns, &id, labels);
            vm.metadata.finalizers = Some(vec!["kubevirt.io/virtualMachineControllerFinalize".into()]);
            vm.metadata.generation = Some(1);
            send(&vms_tx, watcher::Event::InitApply(vm));
        }
        // A real list arrives in pages of 500; let the controller take each in.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(&vms_tx, watcher::Event::InitDone);
    let listed: Vec<_> = (0..plans)
        .map(|p| {
            plan(
                ns,
                &format!("import-{p}"),
                &format!("plan-{p}"),
                running_status(&ids(p).iter().map(String::as_str).collect::<Vec<_>>()),
            )
        })
        .collect();
    list(listed).for_each(|e| send(&plans_tx, e));
    list(vec![provider(ns, "vcenter", "vsphere")]).for_each(|e| send(&providers_tx, e));
    list(Vec::<k8s_openapi::api::core::v1::ConfigMap>::new()).for_each(|e| send(&records_tx, e));

    let total = plans * per_plan;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.metrics.reconciles(Outcome::Ineligible) < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} VMs reconciled; {} settled, {} errors; controller stream: {:?}",
            ctx.metrics.reconciles(Outcome::Ineligible),
            ctx.metrics.reconciles(Outcome::Settled),
            ctx.metrics.reconciles(Outcome::Error),
            stream_errors.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (rss_watched, _) = rss();
    println!("{total} VMs watched: resident memory {rss_watched:.1} MiB (was {rss0:.1} MiB before listing)");

    let flip = Instant::now();
    let done = plan(
        ns,
        "import-0",
        "plan-0",
        succeeded_status(&ids(0).iter().map(String::as_str).collect::<Vec<_>>()),
    );
    send(&plans_tx, watcher::Event::Apply(done));
    while ctx.metrics.reconciles(Outcome::Adopted) < per_plan {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = flip.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let writes = ctx.metrics.writes_ok(Write::VmLabels) + ctx.metrics.writes_ok(Write::TrackingConfigMap);
    let (rss_end, peak) = rss();
    println!(
        "{per_plan} VMs adopted in {elapsed:?} at {latency_ms} ms per API request ({:.0} adoptions/s)",
        per_plan as f64 / elapsed.as_secs_f64()
    );
    println!(
        "writes per adoption: {:.2} plus {:.2} Events; requests seen by the API: {}",
        writes as f64 / per_plan as f64,
        ctx.metrics.writes_ok(Write::Event) as f64 / per_plan as f64,
        api.requests().len()
    );
    println!("resident memory: {rss_end:.1} MiB now, {peak:.1} MiB peak");
}
