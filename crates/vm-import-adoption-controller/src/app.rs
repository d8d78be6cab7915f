//! The process: signals, the HTTP server, leadership, and one controller run per term
//! of leadership. Each run starts from fresh watches and caches, so a replica that
//! regains the Lease after losing it never acts on a stale view.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, events::Reporter, reflector, watcher},
};
use tokio::sync::watch;
use tracing::{error, info, warn};
use vm_import_core::contract::{FORKLIFT_VM_SELECTOR, TRACKING_CONFIGMAP_SELECTOR};

use kube::{Resource, runtime::Controller};
use vm_import_api::VMAdoption;
use vm_import_core::apps::Charts;

use crate::{
    backoff::{WatchBackoff, WatchHealth},
    cli::Args,
    controller::{self, RunConfig, WatchStream, Watches, Writers},
    events::Publisher,
    full::{self, FullContext},
    http::{self, HttpState},
    leader::{self, LeaseConfig},
    metrics::Metrics,
    reconcile::{Context, VmMeta},
    resources::{HelmRelease, Plan, Provider, VirtualMachine},
    triggers::triggers,
};

/// Name under which the controller reports Events and identifies itself.
pub const CONTROLLER_NAME: &str = "vm-import-adoption-controller";

/// How long a graceful shutdown waits for the reconciles in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the process could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("no Kubernetes configuration: {0} (set KUBECONFIG or run in a cluster)")]
    Config(#[source] kube::Error),
    /// The HTTP port could not be bound.
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), AppError> {
    let client = Client::try_default().await.map_err(AppError::Config)?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        stop_tx.send_replace(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let http_state = HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| AppError::Http {
            addr: args.http_addr,
            source,
        })?;
    let http = tokio::spawn(http::serve_on(listener, http_state, stopped()));
    // Informational only: the watches do not wait for it, and /healthz is already up.
    tokio::spawn({
        let client = client.clone();
        async move {
            match client.apiserver_version().await {
                Ok(v) => info!(version = %v.git_version, "connected to the API server"),
                Err(e) => warn!(error = %e, "the API server does not answer yet; watches will retry with backoff"),
            }
        }
    });

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("{CONTROLLER_NAME}-{}", std::process::id()));
    let config = RunConfig {
        concurrency: args.concurrency,
        resync: (args.resync_interval > 0).then(|| std::time::Duration::from_secs(args.resync_interval)),
    };
    let full = args.full_adoption.then(|| Charts {
        instance: args.vm_instance_chart.clone(),
        disk: args.vm_disk_chart.clone(),
    });

    if !args.leader_election {
        run_controller(
            &client,
            &identity,
            config,
            full.as_ref(),
            &metrics,
            &ready,
            first_of(stopped(), futures::future::pending()),
        )
        .await;
    } else {
        let lease = LeaseConfig {
            namespace: args
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration: args.lease_duration,
        };
        info!(lease = %lease.name, namespace = %lease.namespace, identity = %identity, "competing for the Lease");
        let leadership = tokio::select! {
            l = leader::start(client.clone(), &lease) => Some(l),
            () = stopped() => None,
        };
        if let Some(mut leadership) = leadership {
            ready.store(true, Ordering::Relaxed);
            loop {
                tokio::select! {
                    r = leadership.leading.wait_for(|l| *l) => if r.is_err() { break },
                    () = stopped() => break,
                }
                info!("leading: starting the controller");
                metrics.set_leader(true);
                let mut leading = leadership.leading.clone();
                let lost = async move {
                    let _ = leading.wait_for(|l| !*l).await;
                };
                let stop = first_of(lost, stopped());
                run_controller(&client, &identity, config, full.as_ref(), &metrics, &ready, stop).await;
                metrics.set_leader(false);
                ready.store(true, Ordering::Relaxed);
                if *leadership.leading.borrow() {
                    break; // stopped while still leading: shutting down
                }
                warn!("lost the Lease: controller stopped, waiting to lead again");
            }
            drop(leadership.leading);
            match tokio::time::timeout(std::time::Duration::from_secs(5), leadership.task).await {
                Ok(Ok(Ok(_))) => info!("released the Lease"),
                other => warn!(?other, "could not release the Lease; it expires by itself"),
            }
        }
    }
    ready.store(false, Ordering::Relaxed);
    if let Ok(Err(e)) = http.await {
        error!(error = %e, "HTTP server failed");
    }
    Ok(())
}

/// Runs one controller over fresh watches until `stop` resolves (one term of leadership,
/// or the whole run without leader election). Public so that end-to-end tests can run
/// the real controller in-process.
pub async fn run_controller(
    client: &Client,
    identity: &str,
    config: RunConfig,
    full: Option<&Charts>,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (vm_reader, vm_writer) = reflector::store::<VmMeta>();
    let (record_reader, record_writer) = reflector::store::<ConfigMap>();
    let recorder = Publisher::new(
        client.clone(),
        Reporter {
            controller: CONTROLLER_NAME.into(),
            instance: Some(identity.to_owned()),
        },
    );
    let mut ctx = Context::new(client.clone(), vm_reader, record_reader, metrics.clone(), recorder);
    ctx.full_adoption = full.is_some();
    let ctx = Arc::new(ctx);

    ready.store(false, Ordering::Relaxed);
    let readiness = tokio::spawn({
        let (ctx, ready) = (ctx.clone(), ready.clone());
        async move {
            ctx.wait_until_ready().await;
            info!(plans = ctx.plans.len(), vms = ctx.vms.len(), "caches synced");
            ready.store(true, Ordering::Relaxed);
        }
    });

    let full = match full {
        Some(charts) if vmadoption_api_served(client).await => Some(charts),
        Some(_) => {
            warn!(
                "the VMAdoption API (vm-import.cozystack.io/v1alpha1) is not served: full adoption is off until \
                 the CRD is installed and the controller restarted"
            );
            None
        }
        None => None,
    };
    // Full adoption waits on imported VMs (to stop, to be label-adopted, to go): every
    // event of the label controller's VM watch is passed on to it, rather than a second
    // watch of the same VMs (and of every other VM) being opened for it.
    let (imported_tx, imported_rx) = match full {
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<VmMeta>();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let watches = api_watches(client, &metrics.watches);
    let watches = Watches {
        vms: pass_on(watches.vms, imported_tx),
        plans: watches.plans,
        providers: watches.providers,
        records: watches.records,
    };
    let writers = Writers {
        vms: vm_writer,
        records: record_writer,
    };
    let stop = stop.shared();
    // kube's controllers start reconciling only once their caches are complete, and a
    // graceful shutdown stops the watches that would complete them: stopped before its
    // caches synced, a controller would wait for them for ever. Nothing can be in flight
    // then, so the term ends at once (and, once synced, a graceful shutdown may take at
    // most SHUTDOWN_GRACE for the reconciles in flight).
    let synced = ready.clone();
    let stuck = {
        let stop = stop.clone();
        async move {
            stop.await;
            if synced.load(Ordering::Relaxed) {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running after the grace period; exiting");
            } else {
                info!("stopped before the caches synced: nothing was in flight");
            }
        }
    };
    let labels = controller::drain(controller::run(watches, writers, ctx, config, stop.clone()));
    let work = async move {
        match (full, imported_rx) {
            (Some(charts), Some(imported)) => {
                let full_ctx = Arc::new(FullContext {
                    client: client.clone(),
                    metrics: metrics.clone(),
                    recorder: Publisher::new(
                        client.clone(),
                        Reporter {
                            controller: CONTROLLER_NAME.into(),
                            instance: Some(identity.to_owned()),
                        },
                    ),
                    charts: charts.clone(),
                    recheck: full::SAFETY_RECHECK,
                    journal: Default::default(),
                });
                // Reflected here rather than by `Controller::new`, so that a relist's
                // triggers wait for the complete store (see `triggers`).
                let (store, writer) = reflector::store::<VMAdoption>();
                let stream = resilient(
                    Api::<VMAdoption>::all(client.clone()),
                    watcher::Config::default(),
                    "vmadoptions",
                    &metrics.watches,
                )
                .reflect(writer);
                // What an adoption waits on, so that it goes on as soon as that changes: its
                // VM (stopped, label-adopted, deleted: the label controller's watch passes
                // each of its events on), the new VM helm-controller renders (the sync's
                // watch below), and the claims it created (bound). Metadata only, and not
                // cached.
                let imported = futures::stream::unfold(imported, |mut rx| async move {
                    let vm = rx.recv().await?;
                    Some((Ok::<_, watcher::Error>(vm), rx))
                });
                let claims = resilient(
                    Api::<PartialObjectMeta<PersistentVolumeClaim>>::all(client.clone()),
                    watcher::Config::default().labels(full::LABEL_ADOPTION),
                    "adoption_claims",
                    &metrics.watches,
                );
                // The VMs helm-controller renders, in full: each version of an adopted one
                // is kept for the sync (see `journal`), so that an edit helm-controller
                // puts back before the sync reads the VM is not lost; and a handoff waits
                // for its new VM here. Not cached.
                let rendered_vms = resilient(
                    Api::<VirtualMachine>::all(client.clone()),
                    watcher::Config::default().labels(full::LABEL_HELM_RELEASE),
                    "synced_vms",
                    &metrics.watches,
                );
                // The VMInstance releases full adoption created: their values edits and
                // helm-controller's status changes trigger the sync.
                let releases = resilient(
                    Api::<PartialObjectMeta<HelmRelease>>::all(client.clone()),
                    watcher::Config::default().labels(full::LABEL_ADOPTION),
                    "adoption_releases",
                    &metrics.watches,
                );
                let by_vm = store.clone();
                let (by_rendered_vm, journal) = (store.clone(), full_ctx.journal.clone());
                let adoptions = Controller::for_stream(triggers("vmadoptions", stream, |_| None, false), store)
                    .with_config(kube::runtime::controller::Config::default().concurrency(4))
                    .watches_stream(imported, move |vm: VmMeta| {
                        full::adoptions_waiting_on(&by_vm, &vm.metadata)
                    })
                    .watches_stream(
                        triggers("synced_vms", rendered_vms, |_| None, false),
                        move |vm: VirtualMachine| full::adoptions_of_rendered_vm(&by_rendered_vm, &journal, &vm),
                    )
                    .watches_stream(
                        triggers("adoption_claims", claims, |_| None, false),
                        |claim: PartialObjectMeta<PersistentVolumeClaim>| full::adoption_of_claim(&claim),
                    )
                    .watches_stream(
                        triggers("adoption_releases", releases, |_| None, false),
                        |release: PartialObjectMeta<HelmRelease>| full::adoption_of_release(&release),
                    )
                    .graceful_shutdown_on(stop)
                    .run(full::reconcile, full::error_policy, full_ctx);
                futures::future::join(labels, drain_adoptions(adoptions)).await;
            }
            _ => labels.await,
        }
    };
    tokio::select! {
        () = work => {}
        () = stuck => {}
    }
    readiness.abort();
}

/// The four cluster-wide watches, as the API server serves them: one LIST then one WATCH
/// each, each restarted on its own [`WatchBackoff`] on failure. VMs and tracking
/// ConfigMaps are selected by label on the server.
pub fn api_watches(
    client: &Client,
    health: &Arc<WatchHealth>,
) -> Watches<
    impl WatchStream<VmMeta> + use<>,
    impl WatchStream<Plan> + use<>,
    impl WatchStream<Provider> + use<>,
    impl WatchStream<ConfigMap> + use<>,
> {
    Watches {
        // `Api<PartialObjectMeta<_>>` makes metadata-only requests: the API server sends
        // PartialObjectMetadata, never a VM's spec or status.
        vms: resilient(
            Api::<VmMeta>::all(client.clone()),
            watcher::Config::default().labels(FORKLIFT_VM_SELECTOR),
            "virtualmachines",
            health,
        ),
        plans: resilient(Api::all(client.clone()), watcher::Config::default(), "plans", health),
        providers: resilient(
            Api::all(client.clone()),
            watcher::Config::default(),
            "providers",
            health,
        ),
        records: resilient(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().labels(TRACKING_CONFIGMAP_SELECTOR),
            "tracking_configmaps",
            health,
        ),
    }
}

/// `vms`, with every object its events carry (applied, deleted or relisted; pruned to
/// what the rules read) also sent to `to`, when there is one. The receiver is the full
/// adoption controller's trigger stream, which is always polled, so the channel only
/// holds what one burst of events brings; once it is dropped, nothing is sent.
fn pass_on(
    vms: impl WatchStream<VmMeta>,
    to: Option<tokio::sync::mpsc::UnboundedSender<VmMeta>>,
) -> impl WatchStream<VmMeta> {
    vms.inspect_ok(move |event| {
        let Some(to) = &to else { return };
        let vm = match event {
            watcher::Event::Apply(vm) | watcher::Event::Delete(vm) | watcher::Event::InitApply(vm) => vm,
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let mut vm = vm.clone();
        controller::prune_vm(&mut vm);
        let _ = to.send(vm);
    })
}

/// A watch of `api` that retries on its own backoff. A `410 Gone` ("too old resource
/// version", as every watch gets from a restarted API server) is not a failure: the
/// watcher relists at once, and the backoff is not lengthened for it.
pub fn resilient<K>(
    api: Api<K>,
    config: watcher::Config,
    name: &'static str,
    health: &Arc<WatchHealth>,
) -> impl WatchStream<K> + use<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, config)
        .filter(|event| futures::future::ready(!is_gone(event)))
        .backoff(WatchBackoff::new(name, health.clone()))
}

/// Whether a watch event is the API server's `410 Gone`.
pub fn is_gone<K>(event: &Result<watcher::Event<K>, watcher::Error>) -> bool {
    matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410)
}

/// Whether the API server serves VMAdoptions. A discovery error other than "not found"
/// (the API server is not reachable yet) counts as served: the watch then retries.
async fn vmadoption_api_served(client: &Client) -> bool {
    match client.list_api_group_resources(&VMAdoption::api_version(&())).await {
        Ok(list) => list.resources.iter().any(|r| r.name == VMAdoption::plural(&())),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(_) => true,
    }
}

/// Drains the full-adoption controller's output; failures are logged by its error policy.
async fn drain_adoptions<S, T, E>(stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "full adoption controller");
            }
            futures::future::ready(())
        })
        .await;
}

/// A `Sync` future that resolves when either `a` or `b` does (the controller's
/// shutdown trigger must be `Sync`; the futures it is made of need not be).
fn first_of(
    a: impl Future<Output = ()> + Send + 'static,
    b: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        futures::future::select(a.boxed(), b.boxed()).await;
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
        task.abort();
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the controller");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    use super::*;

    fn vm(name: &str) -> VmMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("t".into()),
            labels: Some(
                [
                    ("plan", "u"),
                    ("vmID", "vm-1"),
                    ("vsphere.forklift.konveyor.io/tag", "x"),
                ]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ),
            annotations: Some([("a".into(), "b".into())].into()),
            ..Default::default()
        }
        .into_response_partial()
    }

    #[tokio::test]
    async fn the_vm_watch_passes_every_vm_it_sees_on_to_full_adoption_unchanged_itself() {
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(vm("a"))),
            Ok(watcher::Event::InitDone),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(vm("b"))),
            Ok(watcher::Event::Delete(vm("a"))),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out: Vec<_> = pass_on(futures::stream::iter(events), Some(tx)).collect().await;
        assert_eq!(out.len(), 6, "every event and error goes on to the label controller");
        assert!(
            matches!(&out[4], Ok(watcher::Event::Apply(v)) if v.metadata.annotations.is_some()),
            "unpruned there"
        );
        let mut passed = Vec::new();
        while let Ok(vm) = rx.try_recv() {
            passed.push(vm);
        }
        let names: Vec<_> = passed
            .iter()
            .map(|v| v.metadata.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b", "a"], "the relisted, applied and deleted VMs");
        assert!(
            passed
                .iter()
                .all(|v| v.metadata.annotations.is_none() && v.metadata.labels.as_ref().is_some_and(|l| l.len() == 2)),
            "pruned to what the rules read"
        );

        // Without full adoption, or once its receiver is gone, nothing is sent.
        let events = vec![Ok(watcher::Event::Apply(vm("c")))];
        assert_eq!(pass_on(futures::stream::iter(events), None).count().await, 1);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        drop(rx);
        let events = vec![Ok(watcher::Event::Apply(vm("d")))];
        assert_eq!(pass_on(futures::stream::iter(events), Some(tx)).count().await, 1);
    }
}
