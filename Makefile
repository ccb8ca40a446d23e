# Each target sets up what it needs, so every one works on a fresh machine.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install install-test test demo bench lint gpu-check gpu-wheels

install:            ## the package and its runtime deps (CPU torch 2.13.0 pinned first)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-test:       ## plus the test extra (peers, TensorFlow oracle, moto)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'

test: install-test  ## the whole suite, CPU only, offline
	$(PYTHON) -m pytest -q

demo:               ## the main job, offline: the embedded model through the hub path, fine-tuned, reloaded, asked
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[plot]'
	$(PYTHON) -m bert_hub.cli demo

bench: install-test ## speed and memory ratios against the peers; writes bench-results/
	$(PYTHON) scripts/bench/run_all.py

lint: install-test
	$(PYTHON) -m ruff check src tests scripts

# Where `make gpu-check` writes its results; wheels that `make gpu-wheels` fetches for it.
OUT ?= gpu-results
GPU_WHEELS := crc32c==2.9.post0 boto3==1.44.8 botocore==1.44.8 s3transfer==0.19.3 \
	jmespath==1.1.0 python-dateutil==2.9.0.post0 six==1.17.0

gpu-check:          ## every CUDA path, unattended and offline, ~8 min; results in $(OUT)/ (docs/gpu.md)
	OUT="$(OUT)" PYTHON="$(PYTHON)" bash scripts/gpu_check.sh

gpu-wheels:         ## wheels a bare GPU machine may lack (Python 3.12, manylinux x86_64) into .whl/
	$(PIP) download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .whl $(GPU_WHEELS)

.PHONY: fuzz
fuzz: install-test  ## hostile-input campaigns in full (archives, 12,000 TF/config cases, model folders, killed writers, cache races; BERT_HUB_FUZZ_SEED=N replays a seed)
	BERT_HUB_FUZZ_CASES=12000 $(PYTHON) -m pytest -q -s -m fuzz tests/fuzz
