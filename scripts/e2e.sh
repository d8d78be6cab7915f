#!/usr/bin/env bash
# The real-cluster half of `make test`: starts the project's own control plane with the
# real Flux controllers (scripts/cluster.sh) and the test world's KubeVirt (its
# aggregated subresource API and virt-controller), runs the end-to-end and fault tests
# in crates/e2e against it with the gate open, then the load harness at 10 Plans x 100
# VMs, which fails when a figure misses its limit. Everything is stopped however this ends.
set -euo pipefail
cd "$(dirname "$0")/.."

export VM_IMPORT_CLUSTER_DIR="$PWD/.testenv/e2e-cluster"
scripts/cluster.sh stop
trap 'scripts/cluster.sh stop' EXIT
eval "$(scripts/cluster.sh start)"
export VM_IMPORT_E2E=1

# `--workspace` everywhere: the same feature set as `make unit`'s build, so nothing is
# built twice.
cargo build --locked --workspace --bins
export VM_IMPORT_CONTROLLER_BIN="$PWD/target/debug/vm-import-adoption-controller"
scripts/cluster.sh kubevirt "$PWD/target/debug/vm-import-test-kubevirt"
VM_IMPORT_METRICS_URL="$(cat "$VM_IMPORT_CLUSTER_DIR/metrics-url")"
export VM_IMPORT_METRICS_URL
# The VM screens' colour, and the console's noVNC and xterm.js (scripts/install-tools.sh).
VM_IMPORT_VNC_COLOUR="$(cat "$VM_IMPORT_CLUSTER_DIR/vnc-colour")"
export VM_IMPORT_VNC_COLOUR
export VM_IMPORT_VNC_KEYS_URL="http://127.0.0.1:$(cat "$VM_IMPORT_CLUSTER_DIR/ports/kubevirt-metrics")/vnc-keys"
export VM_IMPORT_CONSOLE_VENDOR_DIR="$PWD/crates/vm-import-console/web/node_modules"
echo "e2e: the real-cluster tests (VM_IMPORT_E2E=1), against $(sed -n 's/.*server: "\([^"]*\)".*/\1/p' "$KUBECONFIG" | head -1)"
# The fault tests run last: stopping the API server and etcd leaves the Flux
# controllers re-establishing their watches for tens of seconds afterwards, which a
# later test would wait out.
# A failure's message, not a backtrace through the async runtime, is what tells.
export RUST_BACKTRACE=0
status=0
cargo nextest run --locked --workspace --run-ignored only --no-fail-fast \
  -E 'package(vm-import-e2e) & !binary(faults)' || status=$?
cargo nextest run --locked --workspace --run-ignored only --no-fail-fast \
  -E 'package(vm-import-e2e) & binary(faults)' || status=$?
((status == 0)) || { echo "e2e: real-cluster tests failed" >&2; exit "$status"; }

# The load harness measures the controller alone: KubeVirt's part and the metrics
# engine would add their own load.
# First the tests' namespaces finish terminating, while KubeVirt's APIService still
# answers discovery; then, once its part is down, the control plane settles (the fault
# tests restarted it just before, and the APIService's removal changes discovery).
for _ in $(seq 180); do
  .tools/bin/kubectl get namespaces --no-headers 2>/dev/null | grep -q Terminating || break
  sleep 1
done
scripts/cluster.sh down kubevirt
scripts/cluster.sh down victoria-metrics
scripts/cluster.sh down vnc
sleep 30
# The controller as it ships (release profile), and the harness optimised too: its
# ceiling is one client making the writes as fast as it can, and an unoptimised client
# makes the server's own rate look slower than it is (by about a fifth here).
cargo build --locked --release -p vm-import-adoption-controller
cargo build --locked --release -p vm-import-e2e --bin vm-import-load
target/release/vm-import-load --controller-bin target/release/vm-import-adoption-controller \
  --plans 10 --vms 100 --check
