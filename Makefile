# The verbs users type. Every target sets up the virtual environment in .venv first if needed.
# TORCH picks the torch build: the default is the CPU build on the development machine; on a CUDA machine set
# e.g. TORCH=torch==2.13.0 with the CUDA wheel index configured in pip (see README, "Running on a GPU").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= torch,ort,report,dev
PY := $(VENV)/bin/python
SB := $(VENV)/bin/shufflebench
STAMP := $(VENV)/.installed

.PHONY: setup test bench validate-timing selfbench
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Measure configs/default.yaml on this device; resumes if interrupted (FRESH=1 to measure everything again).
bench: $(STAMP)
	$(SB) run configs/default.yaml $(if $(FRESH),--fresh)

# shufflebench's timer against torch.utils.benchmark, and its overhead against a bare loop.
validate-timing: $(STAMP)
	$(PY) scripts/validate_timing.py

# The project's own speed targets (pytest-benchmark), e.g. counting a ResNet-50 takes well under a second.
selfbench: $(STAMP)
	$(PY) -m pytest tests/bench --benchmark-enable $(PYTEST_ARGS)
