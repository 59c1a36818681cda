# Everything a fresh machine needs is installed by these targets; nothing is assumed beyond
# python3 (3.10+) and make. System packages (node/npm, Docker engine, registry, debootstrap) come from
# dev/system-deps.sh, with apt-get when run as root.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VENV_AZ ?= .venv-az
VENV_AML ?= .venv-aml
EXAMPLE ?= examples/diabetes-blob

.PHONY: setup demo test bench bench-image bench-cache bench-blobs lint clean azure-rehearsal

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

.system-deps: dev/system-deps.sh
	bash dev/system-deps.sh
	touch $@

# Exactly the versions package-lock.json records (Azurite, and the expression evaluator the action tests use).
node_modules/.bin/azurite: package.json package-lock.json | .system-deps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Azure CLI (azure-cli from PyPI), in a venv of its own: it pins azure-mgmt versions that conflict with
# modelfunc's. tests/azure/test_azure_parity.py runs Microsoft's recipe with it against the ARM fake.
$(VENV_AZ)/bin/az:
	$(PYTHON) -m venv $(VENV_AZ)
	$(VENV_AZ)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_AZ)/bin/python -m pip install --quiet azure-cli==2.91.0  # the version docs/azure-parity.md was made with

# azmlinfsrv (azureml-inference-server-http), Azure ML's own scoring server: the oracle tests/host/test_conformance.py
# compares `modelfunc serve` with. A venv of its own, as its pins (pydantic~=2.12, opentelemetry-sdk==1.33.0) would
# otherwise decide modelfunc's test environment; the libraries the entry scripts use (numpy, pandas,
# inference-schema, flask, werkzeug) are pinned to the versions in $(VENV), so both servers run the same code.
$(VENV_AML)/.installed: $(VENV)/.installed-test
	$(PYTHON) -m venv $(VENV_AML)
	$(VENV_AML)/bin/python -m pip install --quiet --upgrade pip
	{ $(BIN)/python -m pip freeze --all | grep -iE '^(numpy|pandas|inference-schema|flask|werkzeug)==' || true; } > $(VENV_AML)/constraints.txt
	$(VENV_AML)/bin/python -m pip install --quiet -c $(VENV_AML)/constraints.txt \
	  azureml-inference-server-http==1.5.1 'inference-schema[numpy-support,pandas-support]' numpy pandas  # the version docs/contract.md was made with
	touch $@

setup: .system-deps $(VENV)/.installed-test node_modules/.bin/azurite $(VENV_AZ)/bin/az $(VENV_AML)/.installed

## The main job on the local default: package the example, start Azurite and the
## local host, upload the sample blob and check the output.
demo: $(VENV)/.installed-test node_modules/.bin/azurite
	$(BIN)/modelfunc up $(EXAMPLE)

## The tests (starts and stops Azurite itself).
# pytest-xdist: TEST_WORKERS processes share one Docker engine (support/engine.py) and each start their own Azurite,
# registries and hosts on free ports; a module whose tests share an expensive fixture keeps them on one worker
# (pytest.mark.xdist_group). The few tests that hold latency or throughput to a fixed bound (marker `serial`) run
# after, alone. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 4
test: setup
	$(BIN)/python -m compileall -q -j 0 generator  # as pip's install of the wheel does: read by each process the suite starts
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial"
	$(BIN)/python -m pytest -m serial

lint: $(VENV)/.installed-test
	$(BIN)/ruff check generator tests benchmarks examples template scripts dev
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --no-progress action.yml .github/workflows

## The local host (1 and N worker processes) beside azmlinfsrv at 1, 16 and 64 connections, on the blob example's
## score.py and on a scikit-learn Ridge score.py. azmlinfsrv runs from $(VENV_AML), given the same scikit-learn.
bench: setup
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  echo "wrk not found (apt-get install wrk): the benchmark falls back to a Python load generator"
	$(VENV_AML)/bin/python -m pip install --quiet -c $(VENV_AML)/constraints.txt \
	  "scikit-learn==$$($(BIN)/python -c 'import sklearn; print(sklearn.__version__)')"
	mkdir -p build
	$(BIN)/python benchmarks/serve_bench.py --json build/bench.json

## modelfunc vs the layout `func init --docker` writes: a warm re-package after a score.py change and a cold package
## (empty caches), over a loopback registry and over a shaped link (a registry in a network namespace behind a veth
## pair, tc htb 100 Mbit/s each way, 20 ms RTT added by a relay: root, iproute2; removed at the end).
bench-image: setup
	@command -v tc >/dev/null || apt-get install -y -qq iproute2 >/dev/null 2>&1 || echo "tc not found (apt-get install iproute2)"
	mkdir -p build
	$(BIN)/python benchmarks/image_bench.py --links loopback,shaped --rate-mbit 100 --rtt-ms 20 \
	  --json build/image-bench.json

## The Redis prediction cache: hit/miss vs uncached, and the local host beside azmlinfsrv on a 10 ms run().
bench-cache: setup $(VENV)/.installed-bench
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 || echo "wrk is needed (apt-get install wrk)"
	mkdir -p build
	$(BIN)/python benchmarks/cache_bench.py --json build/cache-bench.json

## The blob trigger as the container's history grows: idle host CPU, one new blob's latency and a backlog's drain
## for N = 100 ... 20,000 processed blobs, HEAD's blob listener beside this tree's, on Azurite.
bench-blobs: setup
	mkdir -p build
	$(BIN)/python benchmarks/blob_bench.py --json build/blob-bench.json

## The Azure path step by step (first deploy, unchanged redeploy, new image or package, failed deploy, destroy)
## for each trigger and both plans (premium-container, flex), against the HTTPS ARM + Azure AD + Kudu fake on
## 127.0.0.1 (the child's proxy tunnels only to it): requests, writes and state per step. Flex's wheels are
## downloaded first (pip); the deploys themselves reach nothing but 127.0.0.1.
azure-rehearsal: $(VENV)/.installed-test
	mkdir -p build
	$(BIN)/python dev/azure_rehearsal.py --json build/azure-rehearsal.json

clean:
	rm -rf $(VENV) $(VENV_AZ) $(VENV_AML) node_modules build .system-deps
