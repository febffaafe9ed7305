# The commands a newcomer needs. `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo reproduce lint format bench clean

setup: $(VENV)/.installed

# torch/torchvision pinned to the releases this machine serves from disk (GUIDE §4); pip only,
# uv/poetry would download several GB. Re-runs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest -q -rs

# The whole product in a few minutes on data that ships with the dependencies (no download).
demo: setup
	rm -rf runs/demo
	$(VENV)/bin/vislab data demo runs/demo/data
	$(VENV)/bin/vislab reproduce runs/demo/data --profile demo --out runs/demo

# Every run the report needs on the real data, then the report; re-run to resume.
# DATA holds p1_data/ and p2_data/ (`vislab data download DIR` makes it). PROFILE=cpu|paper.
PROFILE ?= cpu
reproduce: setup
	$(if $(DATA),,$(error pass DATA=DIR, a folder holding p1_data/ and p2_data/))
	$(VENV)/bin/vislab reproduce $(DATA) --profile $(PROFILE) --out runs/reproduce-$(PROFILE)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

bench: setup
	$(PY) bench/train_throughput.py

clean:
	rm -rf runs/demo .pytest_cache
