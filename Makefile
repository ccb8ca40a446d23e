# Each target sets up what it needs, so every one works on a fresh machine.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install install-test test demo bench lint

install:            ## the package and its runtime deps (CPU torch 2.13.0 pinned first)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-test:       ## plus the test extra (peers, TensorFlow oracle, moto)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'

test: install-test  ## the whole suite, CPU only, offline
	$(PYTHON) -m pytest -q

demo: install       ## the main job: the embedded demo model through the whole hub path, offline
	bert-hub demo

bench: install-test ## speed and memory ratios against the peers; writes bench-results/
	$(PYTHON) scripts/bench/run_all.py

lint: install-test
	$(PYTHON) -m ruff check src tests scripts

.PHONY: fuzz
fuzz: install-test  ## hostile-input campaigns in full (12,000 TF/config cases; BERT_HUB_FUZZ_SEED=N for another seed)
	BERT_HUB_FUZZ_CASES=12000 $(PYTHON) -m pytest -q -s -m fuzz tests/fuzz
