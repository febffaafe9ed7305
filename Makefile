# The commands a newcomer needs. `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# glibc's allocator costs up to 1.4x in torch throughput; these make runs faster and steadier.
export MALLOC_MMAP_THRESHOLD_ = 33554432
export MALLOC_TRIM_THRESHOLD_ = 1073741824

.PHONY: setup test demo lint format bench clean

setup: $(VENV)/.installed

# torch/torchvision pinned to the releases this machine serves from disk (GUIDE §4); pip only,
# uv/poetry would download several GB. Re-runs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

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
