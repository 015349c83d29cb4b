# Two entry points for a fresh machine: `make demo` and `make test`. Each creates the
# virtual environment on first use. torch is installed on its own first, pinned to the
# CPU build, so that the package's torch range does not pull a CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e '.[all,test]'
	touch $@

.PHONY: install demo test bench
install: $(VENV)/.installed

demo: install
	$(VENV)/bin/stae demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py

# Issue 7: re-run the paper's experiments (scripts/reproduce.py; docs/results.md).
# `make reproduce ARGS=--quick` checks the pipeline in minutes; ARGS=--background detaches.
.PHONY: reproduce
reproduce: install
	$(VENV)/bin/pip install --quiet -e '.[all,reproduce]'
	$(PY) scripts/reproduce.py $(ARGS)

# The documentation pictures made by the shipped model (docs/img; scripts/docs_pictures.py).
# Re-run after replacing src/stae/weights/vanilla-mmnist.safetensors; a few seconds, one thread.
.PHONY: docs-pictures
docs-pictures: install
	OMP_NUM_THREADS=1 $(PY) scripts/docs_pictures.py
