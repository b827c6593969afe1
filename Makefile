# The verbs users type. Every target sets up the virtual environment in .venv first if needed.
# TORCH picks the torch build: the default is the CPU build on the development machine; on a CUDA machine set
# e.g. TORCH=torch==2.13.0 with the CUDA wheel index configured in pip (see README, "Running on a GPU").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= torch,ort,report,fleet,dev
PY := $(VENV)/bin/python
SB := $(VENV)/bin/shufflebench
STAMP := $(VENV)/.installed

PAPER_SWEEPS := configs/paper/g1.yaml configs/paper/g2.yaml configs/paper/g3.yaml configs/paper/g4.yaml \
	configs/paper/networks.yaml

.PHONY: setup test lint docs bench paper calibrate report site compare arm-emulated gpu-check validate-timing validate-launcher selfbench
setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# On every core (pytest-xdist); each test worker has its own sweep lock and preparation cache (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

# Measure configs/default.yaml on this device, profile Figure 2's networks, write reports/<device-id>/index.md.
# Resumes if interrupted (FRESH=1 to measure everything again).
bench: $(STAMP)
	$(SB) run configs/default.yaml $(if $(FRESH),--fresh)
	$(SB) breakdown
	$(SB) report

# The full ShuffleNet V2 reproduction on this device: Tables 1-4 at x1/x2/x4 and the Table 8 networks (long).
paper: $(STAMP)
	for sweep in $(PAPER_SWEEPS); do $(SB) run $$sweep || exit $$?; done
	$(SB) breakdown
	$(SB) report

# The latency predictor on this device: its calibration sweep (single ops), the design networks its network factor
# comes from (configs/paper/networks.yaml, Xception with them) and the held-out networks it is scored on
# (configs/held-out.yaml), then the report, whose "Predicted latency" section scores it on every other measured cell:
# the guideline blocks, the design-set networks and the held-out ones. Resumes if interrupted (FRESH=1 measures all
# three again, in one session: on a VM a calibration and networks measured on different days are not comparable).
calibrate: $(STAMP)
	$(SB) calibrate $(if $(FRESH),--fresh)
	$(SB) run configs/paper/networks.yaml $(if $(FRESH),--fresh)
	$(SB) run configs/held-out.yaml $(if $(FRESH),--fresh)
	$(SB) report

# The report of this device's results, or of RESULTS="folder ...".
report: $(STAMP)
	$(SB) report $(RESULTS)

# Every device's results as a static site in site/ (RESULTS="folder ..." for others): open site/index.html.
site: $(STAMP)
	$(SB) site $(or $(RESULTS),results)

# Devices side by side: RESULTS="results/<device-a> results/<device-b>", the first the baseline (default: every
# device under results/, against this device's folder where it has one).
compare: $(STAMP)
	$(SB) compare $(or $(RESULTS),results)

# The torch-free ONNX Runtime path on emulated aarch64 (qemu-user); needs root. See scripts/arm_emulated.sh.
arm-emulated: $(STAMP)
	PYTHON=$(PY) bash scripts/arm_emulated.sh

# Everything on a CUDA GPU in about 7 minutes with the Python already there (PYTHON, default python3, must have torch
# with CUDA; no venv, no network): GPU tests, Tables 1-4 at x1, Table 8 networks, breakdown, report, all written to
# $(OUT) or gpu-check/. Says so and exits 0 where no GPU is visible. See scripts/gpu_check.sh.
gpu-check:
	PYTHON=$(PYTHON) bash scripts/gpu_check.sh

# shufflebench's timer against torch.utils.benchmark, and its overhead against a bare loop.
validate-timing: $(STAMP)
	$(PY) scripts/validate_timing.py

# Forked workers (shufflebench.launcher) against freshly executed ones on the same cells, interleaved by round: medians,
# intervals, between-process spread and seconds per worker run (about 8 minutes on 2 cores).
validate-launcher: $(STAMP)
	$(PY) scripts/validate_launcher.py

# docs/columns.md, the reference of the results columns, from the row dataclasses (a test keeps it up to date).
docs: $(STAMP)
	$(PY) -c "from shufflebench.results import column_reference; print(column_reference(), end='')" > docs/columns.md

# Style: ruff's checks and formatting (line length 120, pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check shufflebench tests scripts
	$(VENV)/bin/ruff format --check shufflebench tests scripts

# The project's own speed targets (pytest-benchmark), e.g. counting a ResNet-50 takes well under a second.
selfbench: $(STAMP)
	$(PY) -m pytest tests/bench --benchmark-enable $(PYTEST_ARGS)
