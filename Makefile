# The project's commands. `make test` is the whole test suite; CI runs `make check test`.
.PHONY: run test unit e2e demo demo-stop cluster cluster-stop check tools testdata appdef crd browser-test

# Runs the controller against the current kubeconfig context (no Lease; one instance).
run:
	cargo run --release -p vm-import-adoption-controller -- --leader-election=false --http-addr=127.0.0.1:8080

# The whole test suite: the tests that need no cluster, then the real-cluster tests and
# the load harness on the project's own control plane (built from source on first use).
test: unit e2e

# The tests that need no cluster, alone: installs the tools they need (into .tools/, and
# Chromium from Debian), checks that the generated files are current, then runs them,
# browser tests included.
unit: tools
	.tools/venv/bin/python scripts/sync-testdata.py --check
	python3 scripts/gen-appdef.py --check
	cargo nextest run --workspace --locked --no-fail-fast
	$(MAKE) browser-test

# The end-to-end and fault tests and the load harness, against a real kube-apiserver,
# kube-controller-manager and etcd on loopback (scripts/e2e.sh starts and stops them).
e2e: tools
	bash scripts/e2e.sh

# The project's main job on a fresh machine, in one command; `make demo-stop` ends it.
demo:
	bash scripts/demo.sh
demo-stop:
	bash scripts/demo.sh stop

# A control plane to try things on by hand: `eval "$$(scripts/cluster.sh env)"`.
cluster: tools
	bash scripts/cluster.sh start
cluster-stop:
	bash scripts/cluster.sh stop

# The console in Debian's Chromium, against the stand-in API server (part of `make test`).
# UPDATE_SCREENSHOTS=1 also rewrites docs/screenshots/.
browser-test: tools
	cargo build -p vm-import-console --bin vm-import-console --example standin
	cd crates/vm-import-console/tests/browser && node --test console.test.mjs

check:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

tools:
	bash scripts/install-tools.sh

# Regenerate generated files.
testdata: tools
	.tools/venv/bin/python scripts/sync-testdata.py
appdef:
	python3 scripts/gen-appdef.py
crd:
	cargo run -q -p vm-import-api --example print-crd > packages/system/vm-import-adoption-controller/crds/vmadoptions.yaml
