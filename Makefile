# Two commands for a fresh machine: `make train` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install train test test-all lint mutation bench clean

# pip's configured find-links folder may hold a CPU-only torch wheel against which the
# registry's torchvision fails to import: install with pip's config files and find-links
# switched off, so that pip resolves torch and torchvision together from the registry,
# then check that both load.
PIP_ENV := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_ENV) $(PIP) install --upgrade pip setuptools wheel
	$(PIP_ENV) $(PIP) install -e ".[dev]"
	$(PY) -c "import torch, torchvision, faiss, pytorch_lightning, hydra; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/dml-train $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check dml tests scripts
	$(VENV)/bin/ruff format --check dml tests scripts

# Mutation testing of the modules that guard results and data (not part of `make test`; long:
# see README "How we test"). MODULE=dml/metrics (or another listed module) runs one module.
MODULE ?=
mutation: $(STAMP)
	nice -n 19 $(PY) scripts/mutation.py $(if $(MODULE),--module $(MODULE)) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
