//! Load harness for the adoption controller against a real API server.
//!
//! It creates P Plans × V VMs shaped like Forklift's output in a fresh namespace, lets
//! the controller (running separately, e.g. `make run`) see them, then marks every Plan
//! succeeded at once and watches the VMs until all are adopted. It reports:
//! time-to-adopt percentiles (from each Plan's status flip to its VM's label, seen
//! through a watch), API writes per adoption and the controller's peak memory, both
//! read from the controller's `/metrics`.
//!
//! ```sh
//! make run &                                  # the controller, metrics on 127.0.0.1:8080
//! VM_IMPORT_E2E=1 cargo run --release -p vm-import-e2e --bin vm-import-load -- --plans 10 --vms 100
//! ```

use std::{
    collections::HashMap,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api,
    api::DynamicObject,
    runtime::{WatchStreamExt, watcher},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vm_import_e2e::{
    cluster::{self, Error},
    objects,
};

#[derive(Debug, Parser)]
#[command(name = "vm-import-load", about = "Load harness for vm-import-adoption-controller")]
struct Args {
    /// Number of Plans.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    plans: u32,
    /// VMs per Plan.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    vms: u32,
    /// The controller's metrics endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080/metrics")]
    metrics_url: String,
    /// Parallel create and patch requests.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to wait for every VM to be adopted, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Keep the namespace afterwards.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn plan_name(p: u32) -> String {
    format!("load-{p}")
}

fn vm_id(p: u32, v: u32) -> String {
    format!("vm-{p}-{v}")
}

async fn run(args: &Args) -> Result<(), Error> {
    let client = cluster::client().await?;
    cluster::ensure_crds(
        &client,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata"),
    )
    .await?;
    let before = Metrics::fetch(&args.metrics_url).await?;
    let ns = cluster::namespace(&client, "vm-import-load").await?;
    println!("namespace {ns}: {} Plans x {} VMs", args.plans, args.vms);

    let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns);
    let vms = cluster::dynamic(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    let providers = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Provider", "providers", &ns);
    cluster::create(&providers, objects::provider("vcenter", &ns)).await?;

    let ids = |p: u32| (0..args.vms).map(|v| vm_id(p, v)).collect::<Vec<_>>();
    let mut uids = HashMap::new();
    for p in 0..args.plans {
        let plan = cluster::create(&plans, objects::plan(&plan_name(p), &ns, "vcenter", &ids(p), true)).await?;
        cluster::set_plan_status(&plans, &plan_name(p), objects::plan_status(&ids(p), &[])).await?;
        uids.insert(p, plan.metadata.uid.unwrap_or_default());
    }
    let created = Instant::now();
    let all: Vec<(u32, u32)> = (0..args.plans)
        .flat_map(|p| (0..args.vms).map(move |v| (p, v)))
        .collect();
    stream::iter(all.iter().copied())
        .map(|(p, v)| {
            let labels = objects::forklift_labels(&uids[&p], &plan_name(p), &ns, &vm_id(p, v), true);
            let vms = vms.clone();
            async move { cluster::create(&vms, objects::vm(&vm_id(p, v), labels)).await }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    println!("created {} VMs in {:?}", all.len(), created.elapsed());

    // Watch adoption as it happens.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn({
        let vms: Api<DynamicObject> = vms.clone();
        async move {
            let stream = watcher(vms, watcher::Config::default().labels("cozystack.io/adopted=true")).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(vm)) = stream.next().await {
                let _ = tx.send((vm.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await; // let the controller list everything

    let mut flipped = HashMap::new();
    let flips: Vec<(u32, Instant)> = stream::iter(0..args.plans)
        .map(|p| {
            let plans = plans.clone();
            let status = objects::plan_status(&[], &ids(p));
            async move {
                let at = Instant::now();
                cluster::set_plan_status(&plans, &plan_name(p), status)
                    .await
                    .map(|()| (p, at))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    flipped.extend(flips);
    let first_flip = flipped.values().min().copied().unwrap_or_else(Instant::now);

    let mut latencies = Vec::with_capacity(all.len());
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    while seen.len() < all.len() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, at))) => {
                if seen.insert(name.clone()) {
                    let p: u32 = name.split('-').nth(1).and_then(|s| s.parse().ok()).unwrap_or_default();
                    let flip = flipped.get(&p).copied().unwrap_or(first_flip);
                    latencies.push(at.saturating_duration_since(flip));
                }
            }
            _ => return Err(Error::Timeout(format!("{} of {} VMs adopted", seen.len(), all.len()))),
        }
    }
    let total = first_flip.elapsed();
    watch.abort();
    tokio::time::sleep(Duration::from_secs(2)).await; // let trailing writes land in the metrics
    let after = Metrics::fetch(&args.metrics_url).await?;

    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let n = all.len() as f64;
    let delta = |key: &str| after.get(key) - before.get(key);
    let writes = delta("vm_import_api_writes_total{kind=\"vm_labels\",outcome=\"ok\"}")
        + delta("vm_import_api_writes_total{kind=\"tracking_configmap\",outcome=\"ok\"}");
    let events = delta("vm_import_api_writes_total{kind=\"event\",outcome=\"ok\"}");
    println!(
        "adopted {} VMs; all done {total:?} after the first Plan flip",
        all.len()
    );
    println!(
        "time to adopt: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!("writes per adoption: {:.2} (plus {:.2} Events)", writes / n, events / n);
    println!(
        "controller memory: {:.1} MiB now, {:.1} MiB peak",
        after.get("vm_import_process_resident_memory_bytes") / 1048576.0,
        after.get("vm_import_process_peak_resident_memory_bytes") / 1048576.0
    );
    if !args.keep {
        cluster::delete_namespace(&client, &ns).await?;
    }
    Ok(())
}

/// One scrape of the controller's `/metrics`.
struct Metrics(HashMap<String, f64>);

impl Metrics {
    async fn fetch(url: &str) -> Result<Self, Error> {
        let fail = |detail: String| Error::TestData(format!("metrics at {url}"), detail);
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| fail("only http:// is supported".into()))?;
        let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
        let mut conn = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            path.trim_start_matches('/')
        );
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await.map_err(|e| fail(e.to_string()))?;
        let values = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Ok(Self(values))
    }

    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}
