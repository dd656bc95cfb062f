# Two commands set up everything on a fresh machine with Python 3.11:
#   make run    create .venv, install, run the demo on bundled data
#   make test   create .venv, install, run the test suite
# torch is installed first and pinned, so pip never resolves a CUDA build on a CPU machine.
# Override for GPU machines:  make test TORCH_SPEC="torch==2.14.1"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.tensormol-installed
# One stamp per torch spec: changing TORCH_SPEC installs that torch, repeating it does nothing.
TORCH_STAMP := $(VENV)/.torch-$(shell echo '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9.\n' '_')
PYTEST_ARGS ?=

.PHONY: run test venv lint bench clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-running on an existing .venv reinstalls nothing: pip skips a satisfied torch pin, and the
# project install only reruns when pyproject.toml changes.
$(TORCH_STAMP): | $(PY)
	$(PIP) install "$(TORCH_SPEC)"
	@touch $@

$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(PIP) install -e ".[$(EXTRAS)]"
	@touch $@

run: $(STAMP)
	$(VENV)/bin/tensormol info
	$(PY) -m tensormol.demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
