#!/usr/bin/env bash
# `make demo`: the project's main job on a fresh machine, no cluster needed.
#   1. starts the project's own control plane with the real Flux controllers
#      (scripts/cluster.sh), the test world's KubeVirt (start, stop and restart through
#      the API server's aggregation layer) and the CRDs;
#   2. installs a `vm-import` application with Helm, as a tenant would;
#   3. plays Forklift's part: the import's steps in the Plan's status, then the VMs,
#      their disks on PersistentVolumes (so that full adoption can hand them over), and
#      the Plan's success;
#   4. runs the adoption controller, which adopts the VMs;
#   5. starts web-01 through KubeVirt's API, fully adopts db-01 (a VMInstance and a VMDisk
#      through the real helm-controller, on the same PV), then stops it and shows the
#      stop in its release's values (the two-way sync);
#   6. runs the "Imported VMs" console, with charts from VictoriaMetrics, web-01's
#      screen (Xvnc, through KubeVirt's `vnc` subresource) and serial console, and New
#      import from a stand-in for Forklift's inventory (200 VMs), behind a stand-in for
#      the platform's sign-in proxy, with a ready token of a tenant user, and prints its
#      URL.
# `make demo-stop` (scripts/demo.sh stop) ends all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export VM_IMPORT_CLUSTER_DIR="$root/.testenv/demo-cluster"
demo="$root/.testenv/demo"
port="${DEMO_PORT:-8090}"

stop() {
  for name in proxy console inventory controller; do
    if [[ -f "$demo/$name.pid" ]]; then
      kill "$(cat "$demo/$name.pid")" 2>/dev/null || true
      rm -f "$demo/$name.pid"
    fi
  done
  scripts/cluster.sh stop
  rm -rf "$demo"
}

if [[ "${1:-}" == stop ]]; then
  stop
  echo "demo stopped"
  exit 0
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop
mkdir -p "$demo"
bash scripts/install-tools.sh
# One build of every binary, in the profile `make test` builds too: a second `make demo`,
# or one after `make test`, builds nothing.
echo "demo: building the project (the first time takes a few minutes)"
cargo build --locked --workspace --bins
echo "demo: starting the control plane, Flux and KubeVirt's part (the first time builds them from Go modules)"
eval "$(scripts/cluster.sh start)"
scripts/cluster.sh kubevirt "$root/target/debug/vm-import-test-kubevirt"
export VM_IMPORT_E2E=1
kubectl=(.tools/bin/kubectl --kubeconfig "$KUBECONFIG")
helm=(.tools/bin/helm4 --kubeconfig "$KUBECONFIG")

target/debug/vm-import-demo crds
"${kubectl[@]}" create namespace tenant-demo >/dev/null
# Every Cozystack tenant namespace holds the platform's values for app releases.
"${kubectl[@]}" -n tenant-demo create secret generic cozystack-values \
  --from-literal=values.yaml=$'_cluster:\n  scheduling: {}\n' >/dev/null

# The controller, with the admin's credentials (in a cluster: its chart's ServiceAccount).
controller_port="$(free_port)"
target/debug/vm-import-adoption-controller --leader-election=false \
  --http-addr "127.0.0.1:$controller_port" >"$demo/controller.log" 2>&1 &
echo $! >"$demo/controller.pid"

echo "installing the vm-import application (Helm release vm-import-my-import in tenant-demo)"
"${helm[@]}" install vm-import-my-import packages/apps/vm-import -n tenant-demo \
  -f scripts/demo/values.yaml >/dev/null
target/debug/vm-import-demo forklift --namespace tenant-demo

for _ in $(seq 100); do
  adopted="$("${kubectl[@]}" -n tenant-demo get virtualmachines.kubevirt.io -l cozystack.io/adopted=true -o name | wc -l)"
  [[ "$adopted" -ge 3 ]] && break
  sleep 0.2
done
"${kubectl[@]}" -n tenant-demo get virtualmachines.kubevirt.io -L cozystack.io/adopted,cozystack.io/original-plan
"${kubectl[@]}" -n tenant-demo get configmap -l cozystack.io/type=adopted-vm

plugin=(target/debug/kubectl-vm_import --kubeconfig "$KUBECONFIG" -n tenant-demo)
echo "demo: starting web-01 through KubeVirt's subresource API (aggregated by the API server)"
"${plugin[@]}" start web-01
echo "demo: fully adopting db-01 (zero-copy, through the real helm-controller)"
"${plugin[@]}" adopt db-01 --wait --timeout 180
"${kubectl[@]}" -n tenant-demo get helmreleases.helm.toolkit.fluxcd.io
echo "demo: starting, then stopping vm-instance-db-01; the sync writes the stop to its release"
# The release's run strategy once helm-controller has applied its latest values.
applied_run_strategy() {
  "${kubectl[@]}" -n tenant-demo get helmrelease vm-instance-db-01 -o \
    jsonpath='{.spec.values.runStrategy}{" "}{.metadata.generation}{" "}{.status.observedGeneration}{" "}{.status.conditions[?(@.type=="Ready")].status}' |
    awk '$2 == $3 && $4 == "True" { print $1 }'
}
wait_applied() { # run strategy
  for _ in $(seq 150); do
    [[ "$(applied_run_strategy)" == "$1" ]] && return
    sleep 0.2
  done
  echo "demo: release vm-instance-db-01 did not reach runStrategy $1; see $demo/controller.log" >&2
  exit 1
}
"${plugin[@]}" start vm-instance-db-01
wait_applied Always
"${plugin[@]}" stop vm-instance-db-01
wait_applied Halted
echo "demo: the stop is in release vm-instance-db-01's values: runStrategy $(applied_run_strategy), applied by helm-controller"

# A tenant user's token, and the console behind the sign-in stand-in.
"${kubectl[@]}" apply -f scripts/demo/user.yaml >/dev/null
"${kubectl[@]}" -n tenant-demo create token demo-user --duration 24h >"$demo/token"
chmod 600 "$demo/token"
# Forklift's inventory for New import: 200 VMs behind the application's vSphere Provider.
target/debug/vm-import-demo inventory --namespace tenant-demo >"$demo/inventory.log" 2>&1 &
echo $! >"$demo/inventory.pid"
for _ in $(seq 100); do
  inventory_url="$(head -1 "$demo/inventory.log" | grep '^http' || true)"
  [[ -n "$inventory_url" ]] && break
  sleep 0.1
done
[[ -n "$inventory_url" ]] || { echo "demo: the inventory did not start; see $demo/inventory.log" >&2; exit 1; }
console_port="$(free_port)"
target/debug/vm-import-console --http-addr "127.0.0.1:$console_port" \
  --api-server "$(sed -n 's/.*server: "\([^"]*\)".*/\1/p' "$KUBECONFIG" | head -1)" \
  --ca-file "$VM_IMPORT_CLUSTER_DIR/pki/ca.crt" --secure-cookies=false \
  --metrics-url "$(cat "$VM_IMPORT_CLUSTER_DIR/metrics-url")" \
  --inventory-url "$inventory_url" \
  --vendor-dir "$root/crates/vm-import-console/web/node_modules" \
  --default-namespace tenant-demo >"$demo/console.log" 2>&1 &
echo $! >"$demo/console.pid"
python3 scripts/demo-proxy.py "$port" "$console_port" "$demo/token" >"$demo/proxy.log" 2>&1 &
echo $! >"$demo/proxy.pid"
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sfL "http://127.0.0.1:$port/" | grep -q web-01 || {
  echo "demo: the console does not show the adopted VMs; see $demo/console.log" >&2
  exit 1
}

cat <<MSG

The "Imported VMs" console: http://127.0.0.1:$port/
  (signed in as tenant-demo's demo-user; the controller's metrics: http://127.0.0.1:$controller_port/metrics)
  web-01's screen (VNC) and serial console: http://127.0.0.1:$port/ns/tenant-demo/vms/web-01/vnc
                                            http://127.0.0.1:$port/ns/tenant-demo/vms/web-01/serial
  New import, from a 200-VM vSphere inventory: http://127.0.0.1:$port/ns/tenant-demo/new-import
    (Import creates the VMImport application; nothing installs it here, as Cozystack would)
Try:   $(scripts/cluster.sh env)
       kubectl -n tenant-demo get virtualmachines.kubevirt.io,configmaps
       target/debug/kubectl-vm_import -n tenant-demo list    (kubectl vm-import, once on the PATH)
       node scripts/demo-screenshots.mjs                      (a screenshot of each part)
Stop:  make demo-stop
MSG
