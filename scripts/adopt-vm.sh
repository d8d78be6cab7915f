#!/usr/bin/env bash
# adopt-vm.sh <vm-name> <namespace> [kubectl vm-import adopt options…]
#
# Fully adopts one imported VM into Cozystack (a VMInstance with VMDisks, zero-copy) and
# waits until it is done. A thin wrapper over `kubectl vm-import adopt --wait`; any
# further options (--stop, --instance-name, --dry-run, …) are passed through.
set -euo pipefail

if [[ $# -lt 2 || "$1" == -* || "$2" == -* ]]; then
  echo "usage: $0 <vm-name> <namespace> [kubectl vm-import adopt options…]" >&2
  exit 2
fi
vm=$1
namespace=$2
shift 2

if ! command -v kubectl-vm_import >/dev/null 2>&1; then
  echo "error: the kubectl vm-import plugin is not installed; run: cargo install --locked --path crates/kubectl-vm-import" >&2
  exit 1
fi

wait=(--wait)
for arg in "$@"; do
  [[ "$arg" == "--dry-run" ]] && wait=()
done
exec kubectl-vm_import adopt "$vm" --namespace "$namespace" "${wait[@]}" "$@"
