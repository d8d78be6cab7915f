#!/usr/bin/env bash
# `make demo`: the project's main job on a fresh machine, no cluster needed.
#   1. starts the project's own control plane (scripts/cluster.sh) and installs the CRDs;
#   2. installs a `vm-import` application with Helm, as a tenant would;
#   3. plays Forklift's part: the VMs, their disks, and the Plan's success;
#   4. runs the adoption controller, which adopts the VMs;
#   5. runs the "Imported VMs" console behind a stand-in for the platform's sign-in
#      proxy, with a ready token of a tenant user, and prints its URL.
# `make demo-stop` (scripts/demo.sh stop) ends all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export VM_IMPORT_CLUSTER_DIR="$root/.testenv/demo-cluster"
demo="$root/.testenv/demo"
port="${DEMO_PORT:-8090}"

stop() {
  for name in proxy console controller; do
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
cargo build --locked --release -p vm-import-adoption-controller -p vm-import-console
cargo build --locked -p vm-import-e2e --bin vm-import-demo
eval "$(scripts/cluster.sh start)"
export VM_IMPORT_E2E=1
kubectl=(.tools/bin/kubectl --kubeconfig "$KUBECONFIG")
helm=(.tools/bin/helm4 --kubeconfig "$KUBECONFIG")

target/debug/vm-import-demo crds
"${kubectl[@]}" create namespace tenant-demo >/dev/null

# The controller, with the admin's credentials (in a cluster: its chart's ServiceAccount).
controller_port="$(free_port)"
target/release/vm-import-adoption-controller --leader-election=false \
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

# A tenant user's token, and the console behind the sign-in stand-in.
"${kubectl[@]}" apply -f scripts/demo/user.yaml >/dev/null
"${kubectl[@]}" -n tenant-demo create token demo-user --duration 24h >"$demo/token"
chmod 600 "$demo/token"
console_port="$(free_port)"
target/release/vm-import-console --http-addr "127.0.0.1:$console_port" \
  --api-server "$(sed -n 's/.*server: "\([^"]*\)".*/\1/p' "$KUBECONFIG" | head -1)" \
  --ca-file "$VM_IMPORT_CLUSTER_DIR/pki/ca.crt" --secure-cookies=false \
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
Try:   $(scripts/cluster.sh env)
       kubectl -n tenant-demo get virtualmachines.kubevirt.io,configmaps
       cargo run -q -p kubectl-vm-import -- -n tenant-demo list
Stop:  make demo-stop
MSG
