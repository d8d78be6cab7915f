# The project's commands. `make test` is the whole test suite; CI runs `make check test`.
.PHONY: run test check tools testdata appdef crd browser-test

# Runs the controller against the current kubeconfig context (no Lease; one instance).
run:
	cargo run --release -p vm-import-adoption-controller -- --leader-election=false --http-addr=127.0.0.1:8080

# The whole test suite: installs the tools it needs (into .tools/, and Chromium from
# Debian), checks that the generated files are current, then runs every test, browser
# tests included (no cluster needed).
test: tools
	.tools/venv/bin/python scripts/sync-testdata.py --check
	python3 scripts/gen-appdef.py --check
	cargo nextest run --workspace --no-fail-fast
	$(MAKE) browser-test

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
