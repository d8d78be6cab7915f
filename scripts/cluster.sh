#!/usr/bin/env bash
# A real, throw-away Kubernetes control plane on loopback: etcd (Debian's etcd-server),
# kube-apiserver and kube-controller-manager (built by testenv/build.sh), with Flux's
# source-controller and helm-controller (built by testenv/build-flux.sh) and the
# project's test charts for Cozystack's vm-instance and vm-disk apps, served from a
# HelmRepository on loopback and published under Cozystack's ExternalArtifact names in
# cozy-system, as Cozystack's source-watcher publishes its own.
#
#   scripts/cluster.sh start          start it; prints the KUBECONFIG line to export
#   scripts/cluster.sh stop           stop what start started (by pid) and delete its data
#   scripts/cluster.sh env            print `export KUBECONFIG=…` for a running cluster
#   scripts/cluster.sh kubevirt BIN   start KubeVirt's part (BIN: vm-import-test-kubevirt,
#                                     from crates/e2e): the aggregated subresource API,
#                                     the virt-controller stand-in and the VMI metrics,
#                                     with VictoriaMetrics scraping them (its URL in
#                                     $VM_IMPORT_CLUSTER_DIR/metrics-url), and Xvnc as
#                                     every running VM's screen
#   scripts/cluster.sh down apiserver|etcd|controller-manager|helm-controller|source-controller
#                                     stop one process, keeping every byte of data
#   scripts/cluster.sh up apiserver|etcd|controller-manager|helm-controller|source-controller
#                                     start it again on the same port and data
#
# Everything lives in one directory, $VM_IMPORT_CLUSTER_DIR (default .testenv/cluster
# in the repository): PKI, etcd's data, logs, pids, ports and the kubeconfig. The
# kubeconfig has two contexts: `admin` (client certificate, system:masters) and `token`
# (a static bearer token of the same admin user, for tools that take a token).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${VM_IMPORT_CLUSTER_DIR:-$root/.testenv/cluster}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

alive() { [[ -f "$dir/$1.pid" ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

port() { cat "$dir/ports/$1"; }

pki() {
  local p="$dir/pki"
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vm-import-test-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  # name, subject, extensions
  cert() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$p/$1.ext"
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
      -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
    rm -f "$p/$1.csr" "$p/$1.ext"
  }
  cert apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth"
  cert admin "/O=system:masters/CN=vm-import-admin" "extendedKeyUsage=clientAuth"
  cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  # The test virt-api, which the API server reaches as the Service kubevirt/virt-api.
  cert virt-api "/CN=virt-api.kubevirt.svc" \
    "subjectAltName=DNS:virt-api.kubevirt.svc,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  # The token context's bearer token: random, never printed.
  local token
  token="$(openssl rand -hex 24)"
  printf '%s,vm-import-admin,vm-import-admin,"system:masters"\n' "$token" >"$p/tokens.csv"
  chmod 600 "$p"/*.key "$p/tokens.csv"
}

kubeconfigs() {
  local p="$dir/pki" server="https://127.0.0.1:$(port apiserver)" token
  token="$(cut -d, -f1 "$p/tokens.csv")"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vm-import-test
  cluster: {server: "$server", certificate-authority: "$p/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$p/admin.crt", client-key: "$p/admin.key"}
- name: token
  user: {token: "$token"}
contexts:
- name: admin
  context: {cluster: vm-import-test, user: admin, namespace: default}
- name: token
  context: {cluster: vm-import-test, user: token, namespace: default}
current-context: admin
EOF
  cat >"$dir/controller-manager.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vm-import-test
  cluster: {server: "$server", certificate-authority: "$p/ca.crt"}
users:
- name: kcm
  user: {client-certificate: "$p/controller-manager.crt", client-key: "$p/controller-manager.key"}
contexts:
- name: kcm
  context: {cluster: vm-import-test, user: kcm}
current-context: kcm
EOF
  chmod 600 "$dir/kubeconfig" "$dir/controller-manager.kubeconfig"
}

launch() { # name, command...
  local name="$1"
  shift
  alive "$name" && return
  # Memory is plentiful here and CPU is not (2 cores for the whole control plane, the
  # controller and the tests): collect garbage only near 2 GiB of heap.
  GOGC=off GOMEMLIMIT=2GiB "$@" >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

start_etcd() {
  launch etcd etcd --name vm-import-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$(port etcd)" --advertise-client-urls "http://127.0.0.1:$(port etcd)" \
    --listen-peer-urls "http://127.0.0.1:$(port etcd-peer)" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(port etcd-peer)" \
    --initial-cluster "vm-import-test=http://127.0.0.1:$(port etcd-peer)" \
    --listen-metrics-urls "" --log-level warn --logger zap
}

start_apiserver() {
  local p="$dir/pki"
  launch apiserver "$(cat "$dir/bin")/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$(port etcd)" \
    --bind-address 127.0.0.1 --secure-port "$(port apiserver)" \
    --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" --token-auth-file "$p/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$p/sa.pub" \
    --service-account-signing-key-file "$p/sa.key" --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC \
    --enable-priority-and-fairness=false --profiling=false --v 1
}

# Only what the tests and the demo rely on: garbage collection, namespace deletion,
# ServiceAccounts and their tokens, PV/PVC binding and protection, RBAC aggregation.
# The rest (workloads, nodes, endpoints, …) would only spend CPU the tests measure.
# The PV binder re-syncs every 2 s rather than 15 s: a claim re-pointed at a retained PV
# binds on a re-sync, and the tests wait for it.
KCM_CONTROLLERS=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,clusterrole-aggregation-controller,root-ca-certificate-publisher-controller

start_controller_manager() {
  local p="$dir/pki"
  launch controller-manager "$(cat "$dir/bin")/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" --secure-port 0 --leader-elect=false \
    --use-service-account-credentials --root-ca-file "$p/ca.crt" \
    --service-account-private-key-file "$p/sa.key" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --controllers "$KCM_CONTROLLERS" \
    --concurrent-gc-syncs 20 --pvclaimbinder-sync-period 2s --v 1
}

kubectl() { "$root/.tools/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

# The test charts, packaged with the values schemas of Cozystack's own charts (from
# testdata/cozystack), and a Helm repository index, served by Python on loopback.
start_charts() {
  local out="$dir/charts" work chart
  if [[ ! -f "$out/index.yaml" ]]; then
    work="$(mktemp -d)"
    mkdir -p "$out"
    for chart in vm-instance vm-disk; do
      cp -r "$root/testenv/charts/$chart" "$work/"
      cp "$root/testdata/cozystack/$chart.values.schema.json" "$work/$chart/values.schema.json"
      "$root/.tools/bin/helm4" package "$work/$chart" -d "$out" >/dev/null
    done
    rm -rf "$work"
    "$root/.tools/bin/helm4" repo index "$out" --url "http://127.0.0.1:$(port charts)"
  fi
  launch charts python3 -m http.server --bind 127.0.0.1 --directory "$out" "$(port charts)"
}

start_source_controller() {
  mkdir -p "$dir/flux-storage"
  KUBECONFIG="$dir/kubeconfig" launch source-controller "$(sed -n 2p "$dir/flux")/source-controller" \
    --enable-leader-election=false --watch-all-namespaces \
    --metrics-addr "127.0.0.1:$(port sc-metrics)" --health-addr "127.0.0.1:$(port sc-health)" \
    --storage-path "$dir/flux-storage" --storage-addr "127.0.0.1:$(port sc-storage)" \
    --storage-adv-addr "127.0.0.1:$(port sc-storage)"
}

# The ExternalArtifact gate: Cozystack's app releases take their chart from that kind.
start_helm_controller() {
  KUBECONFIG="$dir/kubeconfig" launch helm-controller "$(sed -n 1p "$dir/flux")/helm-controller" \
    --enable-leader-election=false --watch-all-namespaces --feature-gates=ExternalArtifact=true \
    --metrics-addr "127.0.0.1:$(port hc-metrics)" --health-addr "127.0.0.1:$(port hc-health)"
}

wait_healthy() { # name, health port's name
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$(port "$2")/readyz" >/dev/null 2>&1; do
    alive "$1" || die "$1 exited; see $dir/logs/$1.log"
    ((SECONDS < deadline)) || die "$1 not ready in 60 s; see $dir/logs/$1.log"
    sleep 0.2
  done
}

# Flux's CRDs and controllers, the chart repository, and the two ExternalArtifacts: this
# plays Cozystack's source-watcher, copying each HelmChart's artifact into the
# ExternalArtifact of Cozystack's name.
start_flux() {
  local hc sc chart artifact
  { read -r hc; read -r sc; } < <("$root/testenv/build-flux.sh")
  printf '%s\n%s\n' "$hc" "$sc" >"$dir/flux"
  kubectl apply --server-side -f "$hc/crds" -f "$sc/crds" >/dev/null
  kubectl wait --for condition=Established --timeout 60s -f "$hc/crds" -f "$sc/crds" >/dev/null
  start_charts
  start_source_controller
  start_helm_controller
  wait_healthy source-controller sc-health
  wait_healthy helm-controller hc-health
  kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: cozy-system}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: {name: vm-import-test-charts, namespace: cozy-system}
spec: {url: "http://127.0.0.1:$(port charts)", interval: 1h}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: vm-instance, namespace: cozy-system}
spec: {chart: vm-instance, sourceRef: {kind: HelmRepository, name: vm-import-test-charts}, interval: 1h}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmChart
metadata: {name: vm-disk, namespace: cozy-system}
spec: {chart: vm-disk, sourceRef: {kind: HelmRepository, name: vm-import-test-charts}, interval: 1h}
EOF
  for chart in vm-instance vm-disk; do
    kubectl -n cozy-system wait --for condition=Ready --timeout 120s "helmchart/$chart" >/dev/null ||
      die "HelmChart $chart not Ready; see $dir/logs/source-controller.log"
    artifact="$(kubectl -n cozy-system get "helmchart/$chart" -o jsonpath='{.status.artifact}')"
    kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: source.toolkit.fluxcd.io/v1
kind: ExternalArtifact
metadata: {name: cozystack-$chart-application-kubevirt-$chart, namespace: cozy-system}
spec: {sourceRef: {apiVersion: source.toolkit.fluxcd.io/v1, kind: HelmChart, name: $chart}}
EOF
    kubectl -n cozy-system patch "externalartifact/cozystack-$chart-application-kubevirt-$chart" \
      --subresource status --type merge -p "{\"status\": {\"artifact\": $artifact}}" >/dev/null
  done
  echo "flux: helm-controller ${hc##*/helm-controller-} and source-controller ${sc##*/source-controller-} (built from the Go module proxy), test charts on http://127.0.0.1:$(port charts)" >&2
}

start_kubevirt() { # the vm-import-test-kubevirt binary
  local p="$dir/pki" bin="${1:-$(cat "$dir/kubevirt-bin" 2>/dev/null)}"
  [[ -x "$bin" ]] || die "kubevirt: no binary ${bin:-given} (cargo build -p vm-import-e2e --bins)"
  echo "$bin" >"$dir/kubevirt-bin"
  start_vnc
  KUBECONFIG="$dir/kubeconfig" VM_IMPORT_E2E=1 launch kubevirt "$bin" --cert "$p/virt-api.crt" --key "$p/virt-api.key" \
    --ca "$p/ca.crt" --port "$(port virt-api)" --metrics-port "$(port kubevirt-metrics)" \
    --vnc-addr "127.0.0.1:$(port vnc)"
  local deadline=$((SECONDS + 90))
  until [[ "$(kubectl get apiservice v1.subresources.kubevirt.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" == True ]]; do
    alive kubevirt || die "vm-import-test-kubevirt exited; see $dir/logs/kubevirt.log"
    ((SECONDS < deadline)) || die "v1.subresources.kubevirt.io not Available in 90 s; see $dir/logs/kubevirt.log"
    sleep 0.2
  done
  echo "kubevirt: v1.subresources.kubevirt.io Available through the API server (test virt-api on https://127.0.0.1:$(port virt-api))" >&2
  start_victoria_metrics
}

# The VMs' screen: Debian's TigerVNC Xvnc on loopback, no password (only the test
# virt-api, behind the API server, connects to it), its root window one known colour.
VNC_COLOUR="#2e8b57"
start_vnc() {
  command -v Xvnc >/dev/null || die "Xvnc is missing: apt-get install tigervnc-standalone-server (scripts/install-tools.sh does)"
  alive vnc && return
  local display=50
  while [[ -e "/tmp/.X$display-lock" || -e "/tmp/.X11-unix/X$display" ]]; do display=$((display + 1)); done
  echo "$display" >"$dir/vnc-display"
  launch vnc Xvnc ":$display" -rfbport "$(port vnc)" -localhost -interface 127.0.0.1 -SecurityTypes None \
    -geometry 800x600 -depth 24 -nolisten tcp -AlwaysShared -desktop vm-import-test
  local deadline=$((SECONDS + 20))
  until DISPLAY=":$display" xsetroot -solid "$VNC_COLOUR" 2>/dev/null; do
    alive vnc || die "Xvnc exited; see $dir/logs/vnc.log"
    ((SECONDS < deadline)) || die "Xvnc not up in 20 s; see $dir/logs/vnc.log"
    sleep 0.2
  done
  echo "$VNC_COLOUR" >"$dir/vnc-colour"
  echo "vnc: Xvnc :$display on 127.0.0.1:$(port vnc), root window $VNC_COLOUR" >&2
}

# VictoriaMetrics single-node (Debian's victoria-metrics, the engine of Cozystack's
# monitoring), scraping the test virt-handler's VMI metrics every 2 s. Range queries
# see samples from 1 s ago (the default hides the last 30 s).
start_victoria_metrics() {
  command -v victoria-metrics >/dev/null || die "victoria-metrics is missing: apt-get install victoria-metrics (scripts/install-tools.sh does)"
  mkdir -p "$dir/victoria-metrics"
  cat >"$dir/victoria-metrics/scrape.yaml" <<EOF
global: {scrape_interval: 2s}
scrape_configs:
- job_name: kubevirt
  static_configs: [{targets: ["127.0.0.1:$(port kubevirt-metrics)"]}]
EOF
  launch victoria-metrics victoria-metrics -httpListenAddr "127.0.0.1:$(port victoria-metrics)" \
    -storageDataPath "$dir/victoria-metrics/data" -retentionPeriod 1d \
    -promscrape.config "$dir/victoria-metrics/scrape.yaml" -search.latencyOffset 1s -loggerLevel WARN
  local deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$(port victoria-metrics)/health" >/dev/null 2>&1; do
    alive victoria-metrics || die "victoria-metrics exited; see $dir/logs/victoria-metrics.log"
    ((SECONDS < deadline)) || die "victoria-metrics not healthy in 30 s"
    sleep 0.2
  done
  echo "http://127.0.0.1:$(port victoria-metrics)" >"$dir/metrics-url"
  echo "metrics: victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null) on http://127.0.0.1:$(port victoria-metrics), scraping the VMI metrics" >&2
}

wait_ready() {
  local p="$dir/pki" url="https://127.0.0.1:$(port apiserver)/readyz" limit="${1:-60}"
  local deadline=$((SECONDS + limit))
  until curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" "$url" >/dev/null 2>&1; do
    alive apiserver || die "kube-apiserver exited; see $dir/logs/apiserver.log"
    ((SECONDS < deadline)) || die "kube-apiserver not ready in ${limit} s; see $dir/logs/apiserver.log"
    sleep 0.2
  done
}

wait_etcd() {
  local deadline=$((SECONDS + 30))
  until curl -sf "http://127.0.0.1:$(port etcd)/health" >/dev/null 2>&1; do
    alive etcd || die "etcd exited; see $dir/logs/etcd.log"
    ((SECONDS < deadline)) || die "etcd not healthy in 30 s"
    sleep 0.1
  done
}

stop_one() {
  local name="$1" pid
  [[ -f "$dir/$name.pid" ]] || return 0
  pid="$(cat "$dir/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/$name.pid"
}

cmd_start() {
  alive apiserver && die "already running in $dir (scripts/cluster.sh stop first)"
  command -v etcd >/dev/null || die "etcd is missing: apt-get install etcd-server (scripts/install-tools.sh does)"
  local bin
  bin="$("$root/testenv/build.sh")"
  rm -rf "$dir"
  mkdir -p "$dir/logs" "$dir/ports"
  echo "$bin" >"$dir/bin"
  for name in etcd etcd-peer apiserver charts sc-metrics sc-health sc-storage hc-metrics hc-health virt-api \
    kubevirt-metrics victoria-metrics vnc; do
    free_port >"$dir/ports/$name"
  done
  pki
  kubeconfigs
  local started=$SECONDS
  start_etcd
  wait_etcd
  start_apiserver
  wait_ready 60
  start_controller_manager
  echo "control plane ready in $((SECONDS - started)) s: kube-apiserver $("$bin/kube-apiserver" --version | cut -d' ' -f2) on https://127.0.0.1:$(port apiserver)" >&2
  start_flux
  cmd_env
}

cmd_stop() {
  [[ -d "$dir" ]] || return 0
  for name in victoria-metrics kubevirt vnc helm-controller source-controller charts controller-manager apiserver etcd; do
    stop_one "$name"
  done
  rm -rf "$dir"
}

cmd_env() {
  [[ -f "$dir/kubeconfig" ]] || die "no cluster in $dir (scripts/cluster.sh start)"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  kubevirt) start_kubevirt "${2:-}" ;;
  down)
    case "${2:-}" in
      kubevirt)
        stop_one kubevirt
        # An APIService whose server is gone fails discovery, and the namespace
        # controller waits on discovery: unregister it, or no namespace finishes
        # terminating (`up kubevirt` registers it again).
        kubectl delete apiservice v1.subresources.kubevirt.io --ignore-not-found >/dev/null
        ;;
      apiserver | etcd | controller-manager | helm-controller | source-controller | victoria-metrics | vnc)
        stop_one "$2"
        ;;
      *) die "down apiserver|etcd|controller-manager|helm-controller|source-controller|kubevirt|victoria-metrics|vnc" ;;
    esac
    ;;
  up)
    case "${2:-}" in
      etcd) start_etcd && wait_etcd ;;
      apiserver) start_apiserver && wait_ready 60 ;;
      controller-manager) start_controller_manager ;;
      helm-controller) start_helm_controller && wait_healthy helm-controller hc-health ;;
      source-controller) start_source_controller && wait_healthy source-controller sc-health ;;
      kubevirt) start_kubevirt ;;
      *) die "up apiserver|etcd|controller-manager|helm-controller|source-controller|kubevirt" ;;
    esac
    ;;
  *) die "usage: scripts/cluster.sh start|stop|env|kubevirt BIN|down NAME|up NAME" ;;
esac
