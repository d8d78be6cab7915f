//! Load harness for the adoption controller against a real API server.
//!
//! First it measures the API server's own ceiling: for as many VMs, in a namespace of
//! their own, the three requests an adoption makes and nothing else, at each of a few
//! concurrencies (the fastest counts). Then it starts the controller binary
//! (`--controller-bin`), and:
//! 1. creates P Plans × V VMs shaped like Forklift's output in a fresh namespace, marks
//!    every Plan succeeded at once, and watches the VMs until all are adopted: the time
//!    from the first Plan's success to the last adoption, and each VM's time-to-adopt;
//! 2. imports single VMs one after another: the time-to-adopt of one VM on its own;
//! 3. reads the API writes per adoption and the peak memory from the controller's
//!    `/metrics`;
//! 4. restarts the controller (SIGTERM, then a new process) and counts its writes.
//!
//! With `--check` it exits 1 when a target is missed.
//!
//! ```sh
//! cargo build --release -p vm-import-adoption-controller -p vm-import-e2e
//! VM_IMPORT_E2E=1 target/release/vm-import-load --controller-bin target/release/vm-import-adoption-controller --check
//! ```

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::DynamicObject,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::mpsc;
use vm_import_adoption_controller::resources::VirtualMachine;
use vm_import_e2e::{
    ceiling::{self, Target},
    cluster::{self, Error},
    objects,
    process::{Controller, Metrics, Options},
    tenant::testdata,
};

#[derive(Debug, Parser)]
#[command(name = "vm-import-load", about = "Load harness for vm-import-adoption-controller")]
struct Args {
    /// The controller binary to start and measure.
    #[arg(long)]
    controller_bin: PathBuf,
    /// Number of Plans.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    plans: u32,
    /// VMs per Plan.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    vms: u32,
    /// Single-VM imports, one after another, for the single VM's time-to-adopt.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    singles: u32,
    /// Parallel create and patch requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The concurrencies the ceiling is measured at; the fastest counts.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    ceiling_concurrency: Vec<usize>,
    /// How long to wait for every VM to be adopted, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Exit 1 when a target is missed.
    #[arg(long)]
    check: bool,
    /// Keep the namespace afterwards.
    #[arg(long)]
    keep: bool,
}

/// What the project promises, at 10 Plans × 100 VMs: the burst within this many times
/// the API server's own time for the same writes.
const BURST_RATIO: f64 = 1.25;
const SINGLE_P99: Duration = Duration::from_millis(250);
const WRITES_PER_ADOPTION: f64 = 2.0;
const EVENTS_PER_ADOPTION: f64 = 1.0;
const PEAK_RSS_MIB: f64 = 64.0;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("vm-import-load: a target was missed");
            ExitCode::FAILURE
        }
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

struct Load {
    plans: Api<DynamicObject>,
    vms: Api<DynamicObject>,
    ns: String,
    adopted: mpsc::UnboundedReceiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

impl Load {
    /// Creates Plan `p` with `n` running VMs; returns their names.
    async fn import(&self, p: u32, n: u32, concurrency: usize) -> Result<Vec<String>, Error> {
        let ids: Vec<String> = (0..n).map(|v| vm_id(p, v)).collect();
        let plan = cluster::create(
            &self.plans,
            objects::plan(&plan_name(p), &self.ns, "vcenter", &ids, true),
        )
        .await?;
        cluster::set_plan_status(&self.plans, &plan_name(p), objects::plan_status(&ids, &[])).await?;
        let uid = plan.metadata.uid.unwrap_or_default();
        stream::iter(ids.iter())
            .map(|id| {
                let labels = objects::forklift_labels(&uid, &plan_name(p), &self.ns, id, true);
                let vms = self.vms.clone();
                async move { cluster::create(&vms, objects::vm(id, labels)).await }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(ids)
    }

    /// Marks Plan `p` succeeded for `ids`; returns when.
    async fn succeed(&self, p: u32, ids: &[String]) -> Result<Instant, Error> {
        let at = Instant::now();
        cluster::set_plan_status(&self.plans, &plan_name(p), objects::plan_status(&[], ids)).await?;
        Ok(at)
    }

    /// Waits until every VM of `names` has been seen adopted.
    async fn wait(&mut self, names: &[String], limit: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + limit;
        let missing = |seen: &HashMap<String, Instant>| names.iter().filter(|n| !seen.contains_key(*n)).count();
        while missing(&self.seen) > 0 {
            match tokio::time::timeout_at(deadline, self.adopted.recv()).await {
                Ok(Some((name, at))) => {
                    self.seen.entry(name).or_insert(at);
                }
                _ => {
                    return Err(Error::Timeout(format!(
                        "{} of {} VMs adopted",
                        names.len() - missing(&self.seen),
                        names.len()
                    )));
                }
            }
        }
        Ok(())
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn mib(metrics: &Metrics, key: &str) -> f64 {
    metrics.get(key) / 1_048_576.0
}

async fn run(args: &Args) -> Result<bool, Error> {
    let client = cluster::client().await?;
    cluster::ensure_crds(&client, &testdata()).await?;
    // Earlier tests' namespaces may still be being deleted: measure on a quiet cluster.
    cluster::wait_no_namespace_terminating(&client, Duration::from_secs(180)).await?;
    let start = |bin: PathBuf| async move {
        let controller = Controller::spawn_binary(
            &bin,
            &Options {
                extra: vec!["--log-filter=warn".into()],
                ..Options::default()
            },
        )
        .await?;
        controller.wait_ready(Duration::from_secs(60)).await?;
        Ok::<_, Error>(controller)
    };
    let total = (args.plans * args.vms) as usize;
    let ceiling = measure_ceiling(&client, total, args).await?;
    let controller = start(args.controller_bin.clone()).await?;
    let ns = cluster::namespace(&client, "vm-import-load").await?;
    let plans = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns);
    let vms = cluster::dynamic(&client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    let providers = cluster::dynamic(&client, "forklift.konveyor.io/v1beta1", "Provider", "providers", &ns);
    cluster::create(&providers, objects::provider("vcenter", &ns)).await?;

    // Adoption as this namespace's VM watch sees it (metadata only, to load the API
    // server as little as possible).
    let (tx, adopted) = mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn({
        let vms: Api<PartialObjectMeta<VirtualMachine>> = Api::namespaced(client.clone(), &ns);
        async move {
            let stream = watcher(vms, watcher::Config::default().labels("cozystack.io/adopted=true")).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(vm)) = stream.next().await {
                let _ = tx.send((vm.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });
    let mut load = Load {
        plans,
        vms,
        ns: ns.clone(),
        adopted,
        seen: HashMap::new(),
    };
    let before = controller.metrics().await?;

    // 1. Many Plans at once.
    let created = Instant::now();
    let mut batches = Vec::new();
    for p in 0..args.plans {
        batches.push(load.import(p, args.vms, args.concurrency).await?);
    }
    println!(
        "created {} Plans x {} VMs in {:.1?}",
        args.plans,
        args.vms,
        created.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // the controller sees every VM first
    let flips: Vec<(u32, Instant)> = stream::iter(0..args.plans)
        .map(|p| {
            let load = &load;
            let ids = &batches[p as usize];
            async move { load.succeed(p, ids).await.map(|at| (p, at)) }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let flipped: HashMap<u32, Instant> = flips.into_iter().collect();
    let first_flip = flipped.values().min().copied().unwrap_or_else(Instant::now);
    let all: Vec<String> = batches.concat();
    load.wait(&all, Duration::from_secs(args.timeout)).await?;
    let last = all
        .iter()
        .filter_map(|n| load.seen.get(n))
        .max()
        .copied()
        .unwrap_or(first_flip);
    let all_done = last.saturating_duration_since(first_flip);
    let mut bulk: Vec<Duration> = (0..args.plans)
        .flat_map(|p| batches[p as usize].iter().map(move |n| (p, n)))
        .filter_map(|(p, n)| Some(load.seen.get(n)?.saturating_duration_since(flipped[&p])))
        .collect();
    bulk.sort();

    // 2. One VM at a time.
    let mut single = Vec::new();
    for s in 0..args.singles {
        let p = args.plans + s;
        let ids = load.import(p, 1, 1).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let at = load.succeed(p, &ids).await?;
        load.wait(&ids, Duration::from_secs(30)).await?;
        single.push(load.seen[&ids[0]].saturating_duration_since(at));
    }
    single.sort();
    tokio::time::sleep(Duration::from_secs(2)).await; // trailing writes land in the metrics
    let after = controller.metrics().await?;
    // Per adoption the controller made in the window: VMs other tests left behind on
    // the cluster may be adopted then too, with their own writes.
    let ours = (total + args.singles as usize) as f64;
    let adoptions = (after.get("vm_import_adoptions_total") - before.get("vm_import_adoptions_total")).max(ours);
    let delta = |kind: &str| after.writes(kind) - before.writes(kind);
    let writes = (delta("vm_labels") + delta("tracking_configmap")) / adoptions;
    let events = delta("event") / adoptions;

    // 3. A restart on a settled cluster.
    controller.terminate(Duration::from_secs(10)).await?;
    let restarted = start(args.controller_bin.clone()).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restart = restarted.metrics().await?;
    let restart_writes = restart.all_writes();
    let peak = mib(&after, "vm_import_process_peak_resident_memory_bytes")
        .max(mib(&restart, "vm_import_process_peak_resident_memory_bytes"));
    restarted.terminate(Duration::from_secs(10)).await?;
    watch.abort();

    let unique: HashSet<&String> = load.seen.keys().collect();
    println!(
        "load figures ({} VMs adopted, kube-apiserver on loopback):",
        unique.len()
    );
    let mut ok = true;
    let mut report = |name: &str, value: String, target: String, met: bool| {
        println!(
            "  {:<44} {:>14}   target {:<12} {}",
            name,
            value,
            target,
            if met { "met" } else { "MISSED" }
        );
        ok &= met;
    };
    let (best, floor) = ceiling;
    println!(
        "  {:<44} {:>14}   at concurrency {best}",
        format!("API server's ceiling: {total} VMs' three writes"),
        format!("{floor:.2?}"),
    );
    let ratio = all_done.as_secs_f64() / floor.as_secs_f64().max(f64::EPSILON);
    println!(
        "  {:<44} {:>14}",
        format!("{total} VMs adopted after their Plans' success"),
        format!("{all_done:.2?}"),
    );
    report(
        "  the burst, as a ratio to the ceiling",
        format!("{ratio:.2}x"),
        format!("<= {BURST_RATIO}x"),
        ratio <= BURST_RATIO,
    );
    println!(
        "  {:<44} p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}",
        "  time to adopt, in bulk",
        percentile(&bulk, 0.5),
        percentile(&bulk, 0.9),
        percentile(&bulk, 0.99),
        percentile(&bulk, 1.0)
    );
    let p99 = percentile(&single, 0.99);
    report(
        &format!("single VM time to adopt, p99 of {}", single.len()),
        format!("{p99:.1?}"),
        format!("< {SINGLE_P99:?}"),
        p99 < SINGLE_P99,
    );
    println!(
        "  {:<44} p50 {:.1?}  max {:.1?}",
        "",
        percentile(&single, 0.5),
        percentile(&single, 1.0)
    );
    report(
        "API writes per adoption (labels + record)",
        format!("{writes:.2}"),
        format!("<= {WRITES_PER_ADOPTION}"),
        writes <= WRITES_PER_ADOPTION,
    );
    report(
        "Events per adoption",
        format!("{events:.2}"),
        format!("<= {EVENTS_PER_ADOPTION}"),
        events <= EVENTS_PER_ADOPTION,
    );
    report(
        "writes by a restarted controller",
        format!("{}", restart_writes as u64),
        "0".into(),
        restart_writes == 0.0,
    );
    report(
        "controller peak RSS",
        format!("{peak:.1} MiB"),
        format!("< {PEAK_RSS_MIB} MiB"),
        peak < PEAK_RSS_MIB,
    );
    if !args.keep {
        cluster::delete_namespace(&client, &ns).await?;
    }
    Ok(ok || !args.check)
}

/// The API server's own time for `total` adoptions' writes, with nothing else: the
/// fastest concurrency and its time. The namespace is gone again before it returns, so
/// that the controller measured next starts on the same cluster as without it.
async fn measure_ceiling(client: &kube::Client, total: usize, args: &Args) -> Result<(usize, Duration), Error> {
    let ns = cluster::namespace(client, "vm-import-ceiling").await?;
    let vms = cluster::dynamic(client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    let targets: Vec<Target> = stream::iter(0..total)
        .map(|i| {
            let (vms, ns) = (vms.clone(), ns.clone());
            async move {
                let name = format!("ceiling-{i}");
                let vm = cluster::create(&vms, objects::vm(&name, serde_json::json!({}))).await?;
                Ok::<_, Error>(Target {
                    namespace: ns,
                    uid: vm.metadata.uid.unwrap_or_default(),
                    name,
                })
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let mut rounds = Vec::new();
    for &concurrency in &args.ceiling_concurrency {
        let took = ceiling::round(client, &targets, &format!("ceiling-{concurrency}"), concurrency).await?;
        println!("ceiling: {total} VMs' three writes at concurrency {concurrency}: {took:.2?}");
        rounds.push((concurrency, took));
    }
    cluster::delete_namespace(client, &ns).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    cluster::wait_for("the ceiling's namespace gone", Duration::from_secs(180), || async {
        matches!(namespaces.get_opt(&ns).await, Ok(None)).then_some(())
    })
    .await?;
    ceiling::fastest(&rounds)
        .ok_or_else(|| Error::TestData("--ceiling-concurrency".into(), "no concurrency given".into()))
}
