#!/usr/bin/env bash
# Builds Flux's helm-controller and source-controller, at the versions pinned below,
# from the Go module proxy, once per version, into
# ~/.cache/vm-import-testenv/<controller>-<version>/<controller>, with the controller's
# CRDs (its module's config/crd/bases) beside it in crds/. Prints the two directories,
# one per line: helm-controller's, then source-controller's.
#
# `go install <module>@<version>` does not work for either controller (their go.mod
# carries replace directives for their own api/ module), so each is built from a
# writable copy of its module with that replace dropped and the api module taken at the
# same version. Go modules and the build cache stay in Go's per-user caches: a warm
# rebuild takes seconds, a cold one 2-3 min per controller on 2 cores (after kube-apiserver,
# whose modules they mostly share).
set -euo pipefail

HELM_CONTROLLER_VERSION=v1.6.4
SOURCE_CONTROLLER_VERSION=v1.9.3

cache="${XDG_CACHE_HOME:-$HOME/.cache}/vm-import-testenv"
command -v go >/dev/null || { echo "testenv/build-flux.sh: Go is needed to build Flux's controllers" >&2; exit 1; }

build() { # controller, version
  local name="$1" version="$2" out="$cache/$1-$2"
  if [[ -x "$out/$name" && -d "$out/crds" ]]; then
    echo "$out"
    return
  fi
  echo "building $name $version from the Go module proxy (2-3 min with a cold Go cache after kube-apiserver, seconds warm)" >&2
  local started=$SECONDS src work
  src="$(go mod download -json "github.com/fluxcd/$name@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || { echo "testenv/build-flux.sh: go mod download gave no directory for $name@$version" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' RETURN
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (
    cd "$work"
    go mod edit -dropreplace="github.com/fluxcd/$name/api"
    go get "github.com/fluxcd/$name/api@$version" >/dev/null 2>&1
    mkdir -p "$out.tmp"
    CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags="-s -w" -o "$out.tmp/$name" .
  )
  mkdir -p "$out.tmp/crds"
  cp "$work"/config/crd/bases/*.yaml "$out.tmp/crds/"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "built $name $version in $((SECONDS - started)) s" >&2
  echo "$out"
}

build helm-controller "$HELM_CONTROLLER_VERSION"
build source-controller "$SOURCE_CONTROLLER_VERSION"
