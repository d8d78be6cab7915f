//! Load harness for the adoption controller against a real API server.
//!
//! It holds the controller's burst to the API server's own ceiling, measured in the same
//! run and on the same cluster:
//! 1. the sweep: for as many VMs as a burst adopts, in a namespace of their own, the
//!    three requests an adoption makes and nothing else, at each of a few concurrencies;
//!    the fastest concurrency is kept;
//! 2. the floor: one VM's three requests on their own, many times over;
//! 3. paired rounds (`--rounds`), each a ceiling at that concurrency, then the controller
//!    binary (`--controller-bin`) started on a quiet cluster: P Plans × V VMs shaped like
//!    Forklift's output, dealt out over N fresh namespaces (`--namespaces`), every Plan
//!    marked succeeded at once, and
//!    the VMs watched until all are adopted (the time from the first Plan's success to
//!    the last adoption, and each VM's time-to-adopt). A round's ratio compares two
//!    figures taken seconds apart, so a machine busy with other work slows both; the
//!    median of the rounds is the figure;
//! 4. in the last round's namespace, single VMs imported one after another: the
//!    time-to-adopt of one VM on its own;
//! 5. the API writes per adoption and the peak memory, from the controller's `/metrics`;
//! 6. a restart of the controller (SIGTERM, then a new process): the time until it is
//!    ready (every cache synced), and its writes once it has reconciled every VM again.
//!
//! Each figure has a target, printed as met or missed. With `--check` it exits 1 when a
//! figure misses its limit: the target itself where it holds with margin on a busy
//! machine, a wider bound where it does not (the burst's ratio and a single VM's time,
//! which other work on the machine moves).
//!
//! ```sh
//! cargo build --release -p vm-import-adoption-controller -p vm-import-e2e
//! VM_IMPORT_E2E=1 target/release/vm-import-load --controller-bin target/release/vm-import-adoption-controller --check
//! # 10,000 VMs over 100 namespaces (the README's figures):
//! VM_IMPORT_E2E=1 target/release/vm-import-load --controller-bin target/release/vm-import-adoption-controller \
//!     --plans 100 --vms 100 --namespaces 100 --rounds 1 --ceiling-concurrency 128 --timeout 900
//! ```

use std::{
    collections::HashMap,
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
    /// Namespaces a burst's Plans are spread over, one after another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    namespaces: u32,
    /// Paired rounds of the ceiling and the burst; the median ratio counts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Single-VM imports, one after another, for the single VM's time-to-adopt.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    singles: u32,
    /// Parallel create and patch requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The concurrencies the ceiling is swept over; the fastest is kept.
    #[arg(long, value_delimiter = ',', default_value = "8,32,128")]
    ceiling_concurrency: Vec<usize>,
    /// How long to wait for every VM of a burst to be adopted, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Run the controller with full adoption on, as it is deployed by default (its VM
    /// watch then also feeds full adoption's triggers); `false` for the labels alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    full_adoption: bool,
    /// Exit 1 when a figure misses its limit.
    #[arg(long)]
    check: bool,
    /// Keep the last round's namespace afterwards.
    #[arg(long)]
    keep: bool,
}

/// What the project promises, at 10 Plans × 100 VMs: the burst within this many times
/// the API server's own time for the same writes (median of the paired rounds)…
const BURST_RATIO: f64 = 1.25;
/// …held with `--check` to this: on 2 cores a round of the same controller gave 1.13x to
/// 1.41x and the median 1.14x to 1.32x, and other work on the machine moves it further.
/// Twice the server's own time is what a controller that reconciled few VMs at a time,
/// or waited between them, would exceed.
const BURST_RATIO_LIMIT: f64 = 2.0;
/// One VM's time to adopt, p99…
const SINGLE_P99: Duration = Duration::from_millis(15);
/// …held with `--check` to this.
const SINGLE_P99_LIMIT: Duration = Duration::from_millis(250);
const WRITES_PER_ADOPTION: f64 = 2.0;
const EVENTS_PER_ADOPTION: f64 = 1.0;
const PEAK_RSS_MIB: f64 = 64.0;
/// A restarted controller's time until every cache is synced.
const RESTART_READY: Duration = Duration::from_secs(10);
/// Samples of one VM's three writes on their own.
const FLOOR_SAMPLES: usize = 200;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.ceiling_concurrency.contains(&0) {
        eprintln!("error: --ceiling-concurrency: a concurrency is at least 1");
        return ExitCode::FAILURE;
    }
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("vm-import-load: a figure missed its limit");
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

/// One namespace of a burst: its Plans and VMs.
struct Space {
    ns: String,
    plans: Api<DynamicObject>,
    vms: Api<DynamicObject>,
}

/// The namespaces of a burst, and adoption as a VM watch of them sees it.
struct Load {
    spaces: Vec<Space>,
    adopted: mpsc::UnboundedReceiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl Load {
    /// `namespaces` fresh namespaces, each with a vSphere Provider, and their VMs watched
    /// for adoption (metadata only, to load the API server as little as possible).
    async fn new(client: &kube::Client, namespaces: u32) -> Result<Self, Error> {
        let mut spaces = Vec::new();
        for _ in 0..namespaces {
            let ns = cluster::namespace(client, "vm-import-load").await?;
            let providers = cluster::dynamic(client, "forklift.konveyor.io/v1beta1", "Provider", "providers", &ns);
            cluster::create(&providers, objects::provider("vcenter", &ns)).await?;
            spaces.push(Space {
                plans: cluster::dynamic(client, "forklift.konveyor.io/v1beta1", "Plan", "plans", &ns),
                vms: cluster::dynamic(client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns),
                ns,
            });
        }
        let ours: std::collections::HashSet<String> = spaces.iter().map(|s| s.ns.clone()).collect();
        let (tx, adopted) = mpsc::unbounded_channel::<(String, Instant)>();
        let watch = tokio::spawn({
            let vms: Api<PartialObjectMeta<VirtualMachine>> = Api::all(client.clone());
            async move {
                let stream =
                    watcher(vms, watcher::Config::default().labels("cozystack.io/adopted=true")).applied_objects();
                futures::pin_mut!(stream);
                while let Some(Ok(vm)) = stream.next().await {
                    if vm.metadata.namespace.as_ref().is_some_and(|ns| ours.contains(ns)) {
                        let _ = tx.send((vm.metadata.name.unwrap_or_default(), Instant::now()));
                    }
                }
            }
        });
        Ok(Self {
            spaces,
            adopted,
            seen: HashMap::new(),
            watch,
        })
    }

    /// The namespace of Plan `p`: Plans are dealt out over the namespaces in turn. VM
    /// names carry their Plan's number, so they are unique over all the namespaces.
    fn space(&self, p: u32) -> &Space {
        &self.spaces[p as usize % self.spaces.len()]
    }

    /// The namespaces, for deleting them.
    fn namespaces(&self) -> Vec<String> {
        self.spaces.iter().map(|s| s.ns.clone()).collect()
    }

    /// Creates Plan `p` with `n` running VMs; returns their names.
    async fn import(&self, p: u32, n: u32, concurrency: usize) -> Result<Vec<String>, Error> {
        let space = self.space(p);
        let ids: Vec<String> = (0..n).map(|v| vm_id(p, v)).collect();
        let plan = cluster::create(
            &space.plans,
            objects::plan(&plan_name(p), &space.ns, "vcenter", &ids, true),
        )
        .await?;
        cluster::set_plan_status(&space.plans, &plan_name(p), objects::plan_status(&ids, &[])).await?;
        let uid = plan.metadata.uid.unwrap_or_default();
        stream::iter(ids.iter())
            .map(|id| {
                let labels = objects::forklift_labels(&uid, &plan_name(p), &space.ns, id, true);
                let vms = space.vms.clone();
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
        cluster::set_plan_status(&self.space(p).plans, &plan_name(p), objects::plan_status(&[], ids)).await?;
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

    /// The burst: `plans` × `vms` VMs imported, then every Plan marked succeeded at once.
    /// Returns the time from the first Plan's success to the last adoption, and each VM's
    /// time from its own Plan's success.
    async fn burst(&mut self, args: &Args) -> Result<(Duration, Vec<Duration>), Error> {
        let created = Instant::now();
        let mut batches = Vec::new();
        for p in 0..args.plans {
            batches.push(self.import(p, args.vms, args.concurrency).await?);
        }
        println!(
            "created {} Plans x {} VMs in {} in {:.1?}",
            args.plans,
            args.vms,
            namespaces(self.spaces.len()),
            created.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await; // the controller sees every VM first
        let flips: Vec<(u32, Instant)> = stream::iter(0..args.plans)
            .map(|p| {
                let ids = &batches[p as usize];
                let load = &*self;
                async move { load.succeed(p, ids).await.map(|at| (p, at)) }
            })
            .buffer_unordered(args.concurrency)
            .try_collect()
            .await?;
        let flipped: HashMap<u32, Instant> = flips.into_iter().collect();
        let first_flip = flipped.values().min().copied().unwrap_or_else(Instant::now);
        let all: Vec<String> = batches.concat();
        self.wait(&all, Duration::from_secs(args.timeout)).await?;
        let last = all
            .iter()
            .filter_map(|n| self.seen.get(n))
            .max()
            .copied()
            .unwrap_or(first_flip);
        let each = (0..args.plans)
            .flat_map(|p| batches[p as usize].iter().map(move |n| (p, n)))
            .filter_map(|(p, n)| Some(self.seen.get(n)?.saturating_duration_since(flipped[&p])))
            .collect();
        Ok((last.saturating_duration_since(first_flip), each))
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// "1 namespace", "100 namespaces".
fn namespaces(n: usize) -> String {
    if n == 1 {
        "1 namespace".into()
    } else {
        format!("{n} namespaces")
    }
}

fn mib(metrics: &Metrics, key: &str) -> f64 {
    metrics.get(key) / 1_048_576.0
}

/// Deletes namespace `ns` and waits until it is gone, with everything in it.
async fn delete_and_wait(client: &kube::Client, ns: &str) -> Result<(), Error> {
    delete_all_and_wait(client, &[ns.to_owned()]).await
}

/// Deletes namespaces `all` and waits until every one is gone, with everything in it.
async fn delete_all_and_wait(client: &kube::Client, all: &[String]) -> Result<(), Error> {
    for ns in all {
        cluster::delete_namespace(client, ns).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in all {
        cluster::wait_for(&format!("namespace {ns} gone"), Duration::from_secs(600), || async {
            matches!(namespaces.get_opt(ns).await, Ok(None)).then_some(())
        })
        .await?;
    }
    Ok(())
}

/// Creates `total` bare VMs in a namespace of their own.
async fn ceiling_vms(client: &kube::Client, total: usize, concurrency: usize) -> Result<(String, Vec<Target>), Error> {
    let ns = cluster::namespace(client, "vm-import-ceiling").await?;
    let vms = cluster::dynamic(client, "kubevirt.io/v1", "VirtualMachine", "virtualmachines", &ns);
    let targets = stream::iter(0..total)
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
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok((ns, targets))
}

/// One round of the API server's ceiling: `total` VMs' three writes at `concurrency`, on
/// VMs of their own, so that every record is created as an adoption's is. The namespace
/// is gone again before it returns, so that what is measured next starts on the same
/// cluster as without it.
async fn ceiling_round(
    client: &kube::Client,
    total: usize,
    concurrency: usize,
    args: &Args,
) -> Result<Duration, Error> {
    let (ns, targets) = ceiling_vms(client, total, args.concurrency).await?;
    let took = ceiling::round(client, &targets, "ceiling", concurrency).await?;
    delete_and_wait(client, &ns).await?;
    Ok(took)
}

/// One VM's three writes on their own, `FLOOR_SAMPLES` times: the least a single
/// adoption can take on this server.
async fn floor(client: &kube::Client, args: &Args) -> Result<Vec<Duration>, Error> {
    let (ns, targets) = ceiling_vms(client, 1, args.concurrency).await?;
    let mut samples = Vec::with_capacity(FLOOR_SAMPLES);
    for i in 0..FLOOR_SAMPLES {
        // Each sample changes a value of the record and of the labels, so every apply writes.
        samples.push(ceiling::round(client, &targets, &format!("floor-{i}"), 1).await?);
    }
    delete_and_wait(client, &ns).await?;
    samples.sort();
    Ok(samples)
}

/// One figure's line: its value, its target met or missed, and, when the run is held to
/// a wider bound than the target, that bound.
struct Report {
    ok: bool,
}

impl Report {
    fn line(&mut self, name: &str, value: String, target: String, met: bool, limit: Option<(String, bool)>) {
        let bound = match &limit {
            Some((limit, _)) => format!("  (fails above {limit})"),
            None => String::new(),
        };
        println!(
            "  {:<44} {:>14}   target {:<12} {}{bound}",
            name,
            value,
            target,
            if met { "met" } else { "MISSED" }
        );
        self.ok &= limit.map_or(met, |(_, within)| within);
    }
}

async fn run(args: &Args) -> Result<bool, Error> {
    let client = cluster::client().await?;
    cluster::ensure_crds(&client, &testdata()).await?;
    // Earlier tests' namespaces may still be being deleted: measure on a quiet cluster.
    cluster::wait_no_namespace_terminating(&client, Duration::from_secs(180)).await?;
    let full_adoption = args.full_adoption;
    let start = |bin: PathBuf| async move {
        let controller = Controller::spawn_binary(
            &bin,
            &Options {
                full_adoption,
                extra: vec!["--log-filter=warn".into()],
                ..Options::default()
            },
        )
        .await?;
        controller.wait_ready(Duration::from_secs(60)).await?;
        Ok::<_, Error>(controller)
    };
    let total = (args.plans * args.vms) as usize;

    // 1. The concurrency at which the server takes the writes fastest.
    let mut sweep = Vec::new();
    for &concurrency in &args.ceiling_concurrency {
        let took = ceiling_round(&client, total, concurrency, args).await?;
        println!("ceiling sweep: {total} VMs' three writes at concurrency {concurrency}: {took:.2?}");
        sweep.push((concurrency, took));
    }
    let Some((best, _)) = ceiling::fastest(&sweep) else {
        return Err(Error::TestData(
            "--ceiling-concurrency".into(),
            "no concurrency given".into(),
        ));
    };

    // 2. The floor of one adoption.
    let floor = floor(&client, args).await?;

    // 3. Paired rounds: the ceiling, then the controller's burst, on the same cluster.
    let mut rounds = Vec::new();
    let mut bulk = Vec::new();
    let mut last = None;
    for round in 1..=args.rounds {
        let ceiling = ceiling_round(&client, total, best, args).await?;
        let controller = start(args.controller_bin.clone()).await?;
        let before = controller.metrics().await?;
        let mut load = Load::new(&client, args.namespaces).await?;
        let (burst, each) = load.burst(args).await?;
        let ratio = burst.as_secs_f64() / ceiling.as_secs_f64().max(f64::EPSILON);
        println!("round {round}: ceiling {ceiling:.2?} at concurrency {best}, burst {burst:.2?}, ratio {ratio:.2}x");
        rounds.push((ceiling, burst, ratio));
        bulk.extend(each);
        if round < args.rounds {
            controller.terminate(Duration::from_secs(10)).await?;
            let all = load.namespaces();
            drop(load);
            delete_all_and_wait(&client, &all).await?;
        } else {
            last = Some((controller, before, load));
        }
    }
    let Some((controller, before, mut load)) = last else {
        return Err(Error::TestData("--rounds".into(), "no round ran".into()));
    };
    bulk.sort();

    // 4. One VM at a time.
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

    // 5. Writes and memory, per adoption the last controller made: VMs other tests left
    // behind on the cluster may be adopted then too, with their own writes.
    let after = controller.metrics().await?;
    let ours = (total + args.singles as usize) as f64;
    let adoptions = (after.get("vm_import_adoptions_total") - before.get("vm_import_adoptions_total")).max(ours);
    let delta = |kind: &str| after.writes(kind) - before.writes(kind);
    let writes = (delta("vm_labels") + delta("tracking_configmap")) / adoptions;
    let events = delta("event") / adoptions;

    // 6. A restart on a settled cluster: the time until the new process is ready (every
    // cache synced), then its writes once it has reconciled every VM it adopted before.
    controller.terminate(Duration::from_secs(10)).await?;
    let restarting = Instant::now();
    let restarted = start(args.controller_bin.clone()).await?;
    let ready_in = restarting.elapsed();
    let adopted_before = load.seen.len() as f64;
    let reconciled = cluster::wait_for(
        "every adopted VM reconciled after the restart",
        Duration::from_secs(args.timeout),
        || async {
            let m = restarted.metrics().await.ok()?;
            (m.sum("vm_import_reconciles_total{") >= adopted_before).then_some(m)
        },
    )
    .await?;
    let reconciled_in = restarting.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // a write would have landed
    let restart = restarted.metrics().await?;
    let restart_writes = restart.all_writes();
    // Two processes: the one that adopted every VM, and the one restarted over them.
    let (adopting, restarted_peak) = (
        mib(&after, "vm_import_process_peak_resident_memory_bytes"),
        mib(&restart, "vm_import_process_peak_resident_memory_bytes"),
    );
    let peak = adopting.max(restarted_peak);
    restarted.terminate(Duration::from_secs(10)).await?;

    println!(
        "load figures ({} VMs adopted in the last round's {}, full adoption {}, kube-apiserver on loopback):",
        load.seen.len(),
        namespaces(load.spaces.len()),
        if args.full_adoption { "on" } else { "off" }
    );
    let mut report = Report { ok: true };
    println!("  {:<44} {}", "API server's ceiling, concurrency swept", {
        let swept: Vec<String> = sweep.iter().map(|(c, t)| format!("{t:.2?} at {c}")).collect();
        swept.join(", ")
    });
    for (i, (ceiling, burst, ratio)) in rounds.iter().enumerate() {
        println!(
            "  {:<44} ceiling {ceiling:.2?}, burst {burst:.2?}: {ratio:.2}x",
            format!("round {} of {total} VMs", i + 1),
        );
    }
    let ratios: Vec<f64> = rounds.iter().map(|(_, _, r)| *r).collect();
    let ratio = median(&ratios);
    report.line(
        &format!("burst as a ratio to the ceiling, median of {}", ratios.len()),
        format!("{ratio:.2}x"),
        format!("<= {BURST_RATIO}x"),
        ratio <= BURST_RATIO,
        Some((format!("{BURST_RATIO_LIMIT}x"), ratio <= BURST_RATIO_LIMIT)),
    );
    println!(
        "  {:<44} p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}",
        "  time to adopt, in bulk, every round",
        percentile(&bulk, 0.5),
        percentile(&bulk, 0.9),
        percentile(&bulk, 0.99),
        percentile(&bulk, 1.0)
    );
    let p99 = percentile(&single, 0.99);
    report.line(
        &format!("single VM time to adopt, p99 of {}", single.len()),
        format!("{p99:.1?}"),
        format!("<= {SINGLE_P99:?}"),
        p99 <= SINGLE_P99,
        Some((format!("{SINGLE_P99_LIMIT:?}"), p99 < SINGLE_P99_LIMIT)),
    );
    let (floor_p50, single_p50) = (percentile(&floor, 0.5), percentile(&single, 0.5));
    println!(
        "  {:<44} p50 {single_p50:.1?}  max {:.1?}",
        "",
        percentile(&single, 1.0)
    );
    println!(
        "  {:<44} p50 {floor_p50:.1?}  p99 {:.1?}; left above it at p50: {:.1?}",
        format!("  floor: one VM's three writes, {FLOOR_SAMPLES} times"),
        percentile(&floor, 0.99),
        single_p50.saturating_sub(floor_p50)
    );
    report.line(
        "API writes per adoption (labels + record)",
        format!("{writes:.2}"),
        format!("<= {WRITES_PER_ADOPTION}"),
        writes <= WRITES_PER_ADOPTION,
        None,
    );
    report.line(
        "Events per adoption",
        format!("{events:.2}"),
        format!("<= {EVENTS_PER_ADOPTION}"),
        events <= EVENTS_PER_ADOPTION,
        None,
    );
    report.line(
        "restart: ready (every cache synced) after",
        format!("{ready_in:.2?}"),
        format!("<= {RESTART_READY:?}"),
        ready_in <= RESTART_READY,
        None,
    );
    println!(
        "  {:<44} {:.2?} ({} reconciles)",
        "  every adopted VM reconciled again after",
        reconciled_in,
        reconciled.sum("vm_import_reconciles_total{") as u64
    );
    report.line(
        "restart: writes",
        format!("{}", restart_writes as u64),
        "0".into(),
        restart_writes == 0.0,
        None,
    );
    report.line(
        "controller peak RSS",
        format!("{peak:.1} MiB"),
        format!("< {PEAK_RSS_MIB} MiB"),
        peak < PEAK_RSS_MIB,
        None,
    );
    println!(
        "  {:<44} adopting {adopting:.1} MiB, restarted over them {restarted_peak:.1} MiB; now {:.1} MiB",
        "  of which",
        mib(&restart, "vm_import_process_resident_memory_bytes")
    );
    if !args.keep {
        let all = load.namespaces();
        drop(load);
        for ns in &all {
            cluster::delete_namespace(&client, ns).await?;
        }
    }
    Ok(report.ok || !args.check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&[1.5, 0.9, 1.1]), 1.1);
        assert_eq!(median(&[1.0, 2.0, 4.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn a_figure_within_its_wider_limit_passes_and_one_beyond_fails() {
        let mut report = Report { ok: true };
        report.line(
            "ratio",
            "1.3x".into(),
            "<= 1.25x".into(),
            false,
            Some(("1.5x".into(), true)),
        );
        assert!(report.ok, "a missed target within its limit is reported, not failed");
        report.line(
            "ratio",
            "1.6x".into(),
            "<= 1.25x".into(),
            false,
            Some(("1.5x".into(), false)),
        );
        assert!(!report.ok);
        let mut report = Report { ok: true };
        report.line("writes", "3".into(), "<= 2".into(), false, None);
        assert!(!report.ok, "a target without a wider limit is the limit");
    }
}
