# csrip: `make demo` and `make test` work on a fresh machine with Python 3.11 and pip.
# Everything runs inside .venv, which the first target creates.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The torch pair is pinned so every machine (and CI) gets the same numerics;
# override for your CUDA setup, e.g. `make test TORCH="torch torchvision"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: venv demo demo-quick test chromium lab data figures results bench clean

venv: $(STAMP)
$(STAMP): pyproject.toml
	@echo "== creating $(VENV) (about 6 GB with the default torch, which brings CUDA libraries; see README)"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip"
	$(PY) -m pip install -q --upgrade pip
	@echo "== installing $(TORCH) (the largest download: a few minutes)"
	$(PY) -m pip install --progress-bar on $(TORCH)
	@echo "== installing csrip and its notebook, test and judge dependencies"
	$(PY) -m pip install -q -e ".[notebooks,test,judge]"
	$(PY) -c "from csrip_lib.tutorial.widgets import install_lab_settings as i; print('JupyterLab settings:', i())"
	@touch $(STAMP)

demo: venv  ## data (or the synthetic fallback), then every notebook with the shipped models -> build/, figures/
	$(PY) -m csrip_lib demo

demo-quick: venv  ## the same tour, training tiny models on the CPU instead of loading checkpoints/
	$(PY) -m csrip_lib demo --preset quick

# Test processes (pytest-xdist): tests that share state are grouped into one process (xdist_group marks).
TEST_WORKERS ?= 2

test: venv chromium  ## the whole test suite, notebooks and the browser test included (quick mode), in TEST_WORKERS processes
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

chromium:  ## best effort: Debian's chromium for tests/test_browser.py (which skips, saying why, without it)
	@[ -x /usr/bin/chromium ] || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium could not be installed: tests/test_browser.py will be skipped"

lab: venv  ## JupyterLab on the notebooks (saving widget state, so figures survive a reopen); as root (Docker, cloud notebooks) with --allow-root
	@$(PY) -c "from csrip_lib.tutorial.widgets import install_lab_settings as i; i()"
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

data: venv  ## download and verify LFW deep-funneled into data/, then derive data/lfw-dev (--data lfw-dev)
	$(PY) -m csrip_lib data --dest data/ --subset dev

figures: venv  ## regenerate the paper's figures into figures/ from checkpoints
	$(PY) -m csrip_lib figures

results: venv  ## measure every published table into results/ on lfw-dev (make data), ship Table 1's models and the base pair, render the docs (hours on a CPU; training runs resume)
	$(PY) -m csrip_lib reproduce all --data lfw-dev --all-variants --force
	$(PY) -m csrip_lib reproduce table1 --ship --force
	$(PY) -m csrip_lib reproduce table2-base --ship --force

bench: venv
	$(PY) benchmarks/bench_sr.py

clean:
	rm -rf build/ .pytest_cache/
