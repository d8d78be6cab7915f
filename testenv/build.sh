#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the k8s.io/kubernetes module
# pinned in testenv/go.mod, into .testenv/bin/<version>/ (git-ignored), once per
# version. Prints that directory. Go modules and the build cache stay in Go's usual
# per-user caches, so a second clone on the same machine links without recompiling.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
version="$(sed -n 's/^[[:space:]]*\(require \)\{0,1\}k8s.io\/kubernetes \(v[0-9.]*\).*/\2/p' "$here/go.mod" | head -1)"
[[ -n "$version" ]] || { echo "testenv/build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
out="$root/.testenv/bin/$version"

if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" ]]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "testenv/build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$out.tmp"
echo "building kube-apiserver and kube-controller-manager $version (4-8 min with cold Go caches on 2 cores, seconds warm)" >&2
started=$SECONDS
# CGO off: static binaries. nojsonv2: from Go 1.27, the experimental encoding/json v2
# makes the API server serve malformed OpenAPI (kubectl apply and helm then fail); the
# flag is accepted, and harmless, on Go 1.26.
# The version is stamped as Kubernetes' own build does, so that clients (Helm's
# kubeVersion checks) see v1.x.y rather than v0.0.0-master.
minor="$(echo "$version" | cut -d. -f2)"
pkg=k8s.io/component-base/version
ldflags="-s -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
(cd "$here" && CGO_ENABLED=0 GOEXPERIMENT=nojsonv2 go build -buildvcs=false -trimpath -ldflags="$ldflags" \
  -o "$out.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "built in $((SECONDS - started)) s" >&2
echo "$out"
