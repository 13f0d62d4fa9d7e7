# Two commands do everything on a fresh Debian 12 machine: `make bench` and `make test`.
# Both set up what is missing (system packages, .venv) and are quick when already set up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSPKGS := liblzo2-dev pocl-opencl-icd ocl-icd-libopencl1 lz4

.PHONY: setup sys venv bench test lint gpu-check clean

setup: sys $(STAMP)

sys:
	@bash scripts/install-system-packages $(SYSPKGS)

$(STAMP): pyproject.toml setup.py drivers/_lz4walk.py examples/my_driver/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]"
	$(PY) -m pip install -q -e examples/my_driver
	@touch $(STAMP)

bench: setup
	$(PY) -m acomp.bench

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

gpu-check:
	bash scripts/gpu-check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
