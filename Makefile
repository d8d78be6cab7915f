# The project's commands. `make test` is the whole test suite; CI runs `make check test`.
.PHONY: run test check tools testdata appdef crd

# Runs the controller against the current kubeconfig context (no Lease; one instance).
run:
	cargo run --release -p vm-import-adoption-controller -- --leader-election=false --http-addr=127.0.0.1:8080

# The whole test suite: installs the tools it needs into .tools/, checks that the
# generated files are current, then runs every test (no cluster needed).
test: tools
	.tools/venv/bin/python scripts/sync-testdata.py --check
	python3 scripts/gen-appdef.py --check
	cargo nextest run --workspace --no-fail-fast

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
