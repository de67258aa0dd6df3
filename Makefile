# Set-up and everyday commands.  `make demo` and `make test` work on a fresh machine with
# only the package registries: they create .venv and install everything themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv demo test lint typecheck pytest proto proto-check bench clean flwr-run

venv: $(STAMP)

# torch first, pinned, so the resolver takes the CPU build instead of a multi-GB CUDA one.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fedkd.cli compare simulations/demo.toml --strategies local,mean,knfu,fedavg --seeds 0,1,2 --name demo --reuse --overwrite

# The same apps through Flower's own `flwr run` and a local SuperLink (offline: no runtime
# dependency installation; the SuperNode count lives in the federation config, not the app).
FLWR_NODES ?= 10
flwr-run: $(STAMP)
	FLWR_HOME=$(CURDIR)/.flwr flwr run . --stream \
	  --federation-config "num-supernodes=$(FLWR_NODES) client-resources-num-cpus=1" \
	  --run-config "num-clients=$(FLWR_NODES) $(RUN_CONFIG)"

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy fedkd server client

pytest: $(STAMP)
	$(VENV)/bin/pytest

proto: $(STAMP)
	$(PY) proto/generate.py

proto-check: $(STAMP)
	$(PY) proto/generate.py --check

TABLE ?= all
bench: $(STAMP)
	bash simulations/bench.sh $(TABLE)

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
