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

.PHONY: venv demo check test lint typecheck pytest proto proto-check bench clean flwr-run lock wheelhouse fedkd-lock

venv: $(STAMP)

# torch first, pinned, so the resolver takes the CPU build instead of a multi-GB CUDA one.
# Every runtime package at the version deploy/node.lock pins (the lock hospitals install
# from is the one the tests run with; torch is pinned above, by its CPU build).
$(STAMP): pyproject.toml deploy/node.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	grep -E '^[A-Za-z0-9][^ ]*==' deploy/node.lock | awk '{print $$1}' | grep -v '^torch==' \
	  > $(VENV)/node-constraints.txt
	$(PY) -m pip install --quiet -c $(VENV)/node-constraints.txt -e ".[dev]"
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

# The fast loop: ruff, mypy and the unit tests on every core.  Tests marked integration
# (real Flower simulations, Ray, SuperLink deployments, installed wheels) run in `make test`.
check: $(STAMP) lint typecheck
	$(VENV)/bin/pytest -m "not integration" -n auto

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy fedkd server client

# The unit tests on every core, then the integration tests one at a time (they share one
# Ray cluster, start SuperLinks and size their deadlines for the whole machine; run two at a
# time they were 13 % faster and a resume test failed).  Each prints its slowest tests.
pytest: $(STAMP)
	$(VENV)/bin/pytest -m "not integration" -n auto --durations=5
	$(VENV)/bin/pytest -m integration --durations=15

proto: $(STAMP)
	$(PY) proto/generate.py

proto-check: $(STAMP)
	$(PY) proto/generate.py --check

TABLE ?= all
bench: $(STAMP)
	bash simulations/bench.sh $(TABLE)

# Offline install at a hospital's node host (no internet there).  `make lock` pins every
# runtime dependency of fedkd, with hashes, for Linux x86_64 (glibc >= 2.28), CPython 3.11 and
# torch's CPU wheel; `make wheelhouse` (on a machine with registry access) downloads exactly
# those files, checked against the hashes, and adds fedkd's own wheel.  At the node:
#   python3 -m venv /opt/fedkd/venv
#   cd wheelhouse && sha256sum -c SHA256SUMS
#   /opt/fedkd/venv/bin/pip install --no-index --find-links . --require-hashes -r node.lock
#   /opt/fedkd/venv/bin/pip install --no-index --no-deps fedkd-*.whl
# Here torch's CPU index is unreachable: `make lock TORCH_SOURCE="--find-links DIR"` with the
# CPU wheel in DIR gives the same pin and hash.
UV ?= uv
LOCK := deploy/node.lock
NODE_PYTHON ?= 3.11
NODE_PLATFORM ?= x86_64-manylinux_2_28
PYPI_INDEX ?= https://pypi.org/simple
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_SOURCE ?= --extra-index-url $(TORCH_CPU_INDEX)
LOCK_COMMAND = echo '$(TORCH_SPEC)+cpu' | $(UV) pip compile pyproject.toml --constraint - \
  --generate-hashes --no-header --python-version $(NODE_PYTHON) \
  --python-platform $(NODE_PLATFORM) --index-url $(PYPI_INDEX) $(TORCH_SOURCE) \
  --index-strategy unsafe-best-match
lock: $(STAMP)
	command -v $(UV) >/dev/null || $(PY) -m pip install --quiet uv
	mkdir -p $(dir $(LOCK))
	{ echo "# fedkd node host (SuperNode + ClientApp): Linux x86_64 glibc>=2.28, CPython $(NODE_PYTHON), CPU torch."; \
	  echo "# Regenerate with: make lock   (torch from TORCH_SOURCE, by default --extra-index-url $(TORCH_CPU_INDEX))"; \
	  echo "# which ran: $(LOCK_COMMAND)"; \
	  echo "# Install offline with pip install --no-index --find-links WHEELHOUSE --require-hashes -r node.lock"; \
	  $(LOCK_COMMAND); } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

WHEELHOUSE ?= wheelhouse
FEDKD_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
NODE_ABI := cp$(subst .,,$(NODE_PYTHON))
# Every manylinux tag a glibc 2.28 x86_64 host accepts (pip does not expand them itself).
NODE_PIP_PLATFORMS := $(foreach v,$(shell seq 5 28),--platform manylinux_2_$(v)_x86_64) \
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
PIP_TORCH_SOURCE ?= --extra-index-url $(TORCH_CPU_INDEX)
wheelhouse: $(STAMP)
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(PY) -m pip download --require-hashes --no-deps -r $(LOCK) -d $(WHEELHOUSE) \
	  --only-binary=:all: --implementation cp --python-version $(NODE_PYTHON) \
	  --abi $(NODE_ABI) --abi abi3 --abi none $(NODE_PIP_PLATFORMS) $(PIP_TORCH_SOURCE)
	$(PY) -m pip wheel --no-deps . -w $(WHEELHOUSE)
	cp $(LOCK) $(WHEELHOUSE)/node.lock
	$(MAKE) --no-print-directory fedkd-lock WHEELHOUSE=$(WHEELHOUSE)
	cd $(WHEELHOUSE) && sha256sum *.whl node.lock fedkd.lock > SHA256SUMS
	du -sh $(WHEELHOUSE)
	@echo "Publish this digest through a second channel (not beside the wheelhouse):"
	@echo "  sha256(SHA256SUMS) = $$(sha256sum $(WHEELHOUSE)/SHA256SUMS | cut -d' ' -f1)"

# fedkd's own wheel, hash-pinned like every other: pip install --require-hashes -r fedkd.lock.
fedkd-lock:
	cd $(WHEELHOUSE) && for wheel in fedkd-$(FEDKD_VERSION)-*.whl; do \
	  echo "fedkd==$(FEDKD_VERSION) --hash=sha256:$$(sha256sum $$wheel | cut -d' ' -f1)"; \
	  done > fedkd.lock

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
