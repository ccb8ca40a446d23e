#!/usr/bin/env bash
# `make gpu-check`: every CUDA path of bert_hub, unattended, on a bare CUDA machine without
# network, in about 8 minutes. Stages: env (versions, GPU, imports), tests (tests/test_cuda.py
# and the CUDA tests of the Trainer and DDP suites), bench (scripts/bench/gpu.py). Each stage has
# its own time limit and exit code; $OUT/summary.md is rewritten after every stage, so it exists
# whatever stops the run. See docs/gpu.md.
#
#   OUT=gpu-results PYTHON=python3 GPU_CHECK_BUDGET=450 scripts/gpu_check.sh
#
# Writes into $OUT (flat, at most 8 files): summary.md, env.txt, pytest.log, facts.jsonl,
# bench.log, bench.json, bench.md (+ real_length.json when that benchmark writes one).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
OUT=${OUT:-gpu-results}
PYTHON=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-450}  # seconds for all stages together
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/summary.md "$OUT"/env.txt "$OUT"/pytest.log "$OUT"/facts.jsonl "$OUT"/bench.log \
    "$OUT"/bench.json "$OUT"/bench.md "$OUT"/real_length.json
export PYTHONUNBUFFERED=1
export BERT_HUB_OFFLINE=1 BERT_HUB_DISABLE_PROGRESS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export GPU_CHECK_FACTS="$OUT/facts.jsonl"
SCRATCH=$(mktemp -d)
export BERT_HUB_CACHE="$SCRATCH/cache"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
START=$(date +%s)
STAGES=()  # "name|exit code|seconds|limit"

remaining() { echo $((BUDGET - ($(date +%s) - START))); }

# stage NAME LIMIT LOG COMMAND...: run COMMAND under `timeout`, output appended to LOG.
stage() {
    local name=$1 limit=$2 log=$3 rc began
    shift 3
    if [ "$limit" -gt "$(remaining)" ]; then limit=$(remaining); fi
    if [ "$limit" -lt 10 ]; then
        STAGES+=("$name|budget spent|0|0")
        write_summary
        return
    fi
    echo "=== $name (limit ${limit} s): $*" | tee -a "$log"
    began=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    STAGES+=("$name|$rc|$(($(date +%s) - began))|$limit")
    echo "=== $name: exit $rc after $(($(date +%s) - began)) s" | tee -a "$log"
    write_summary
}

verdict() {
    case $1 in
        0) echo "ok" ;;
        124 | 137) echo "**TIMED OUT**" ;;
        "budget spent") echo "**not run: budget spent**" ;;
        *) echo "**FAILED (exit $1)**" ;;
    esac
}

write_summary() {
    local entry name rc secs limit
    {
        echo "# gpu-check summary"
        echo
        echo "- when: $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - START )) s so far (budget ${BUDGET} s)"
        echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
        echo "- host: $(uname -n), $(nproc) cores"
        if [ -s "$OUT/env.txt" ]; then
            sed -n '/^=== env /,/^=== env: /p' "$OUT/env.txt" | grep -E \
                '^(python|torch|gpu [0-9]|sdpa|nccl|transformers|crc32c|boto3|bert_hub imports)' \
                | sed 's/^/- /'
        fi
        echo
        echo "| stage | result | seconds | limit |"
        echo "|---|---|---:|---:|"
        for entry in "${STAGES[@]}"; do
            IFS='|' read -r name rc secs limit <<<"$entry"
            echo "| $name | $(verdict "$rc") | $secs | $limit |"
        done
        if [ -s "$OUT/pytest.log" ]; then
            echo
            echo "## CUDA tests"
            echo
            echo '```'
            grep -E '^=+ .*(passed|failed|skipped|error|no tests ran).* =+$' "$OUT/pytest.log" | tail -1
            grep -E '^(FAILED|ERROR|SKIPPED) ' "$OUT/pytest.log"
            echo '```'
        fi
        if [ -s "$OUT/facts.jsonl" ]; then
            echo
            echo "## Measured by the tests (facts.jsonl)"
            echo
            echo '```'
            grep -v '"check": "head"' "$OUT/facts.jsonl"
            grep '"check": "head"' "$OUT/facts.jsonl" | "$PYTHON" -c '
import collections, json, sys
worst = collections.defaultdict(float)
for line in sys.stdin:
    record = json.loads(line)
    worst[record["mode"]] = max(worst[record["mode"]], record["error"])
if worst:
    print("heads, worst relative error per mode:",
          ", ".join(f"{mode} {error:.1e}" for mode, error in worst.items()))
' 2>/dev/null
            echo '```'
        fi
        if [ -s "$OUT/bench.md" ]; then
            echo
            sed 's/^# /## /' "$OUT/bench.md"
        fi
    } >"$OUT/summary.md"
}

on_signal() {
    STAGES+=("interrupted by a signal|130|0|0")
    write_summary
    rm -rf "$SCRATCH"
    exit 130
}
trap on_signal INT TERM

# --- env: versions, the GPU, wheels from .whl/ (if prepared: `make gpu-wheels`), imports
if compgen -G ".whl/*.whl" >/dev/null; then
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        stage wheels 120 "$OUT/env.txt" "$PYTHON" -m pip install --no-index --no-deps --quiet \
            --target "$SCRATCH/wheels" .whl/*.whl
    else  # no pip: a wheel is a zip archive whose contents go on the path as they are
        stage wheels 120 "$OUT/env.txt" bash -c 'for w in "$@"; do
            "'"$PYTHON"'" -m zipfile -e "$w" "'"$SCRATCH/wheels"'" || exit 1; done' _ .whl/*.whl
    fi
    export PYTHONPATH="$SCRATCH/wheels:$PYTHONPATH"
fi
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$OUT/env.txt" 2>&1
fi
stage env 120 "$OUT/env.txt" "$PYTHON" - <<'EOF'
import importlib
import platform
import sys

import torch

print("python", platform.python_version(), sys.executable)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available",
      torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"gpu {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, sm {p.major}.{p.minor}")
    print("sdpa enabled: flash", torch.backends.cuda.flash_sdp_enabled(),
          "mem_efficient", torch.backends.cuda.mem_efficient_sdp_enabled(),
          "cudnn", torch.backends.cuda.cudnn_sdp_enabled(),
          "| tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
    print("nccl", torch.cuda.nccl.version())
for name in ("transformers", "safetensors", "tokenizers", "numpy", "pytest", "crc32c", "boto3"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "(no version)"))
    except ImportError as error:
        print(name, "not importable:", error)
import bert_hub  # noqa: E402
for module in ("modeling", "trainer", "distributed", "optimization", "hub", "tokenization", "cli"):
    importlib.import_module(f"bert_hub.{module}")
print("bert_hub imports: ok, from", bert_hub.__file__)
EOF
stage cli 60 "$OUT/env.txt" "$PYTHON" -m bert_hub.cli env

# --- tests: every CUDA test; without a GPU they skip, each with its reason.
# --noconftest: tests/conftest.py loads the HTTP test server, which needs crc32c; none of these
# tests uses its fixtures.
stage tests 270 "$OUT/pytest.log" "$PYTHON" -m pytest -v -rfEs -p no:cacheprovider \
    --noconftest -o timeout=200 \
    tests/test_cuda.py \
    tests/test_trainer.py::test_optimize_on_cpu_keeps_optimizer_state_off_the_gpu \
    tests/test_trainer.py::test_dataparallel_matches_single_device \
    tests/test_distributed.py::test_nccl_two_processes_equal_one

# --- bench: writes bench.json and bench.md after each section; its own budget ends before the
# stage's limit so that it reports what it measured.
BENCH_LIMIT=$(remaining)
if [ "$BENCH_LIMIT" -gt 300 ]; then BENCH_LIMIT=300; fi
stage bench "$BENCH_LIMIT" "$OUT/bench.log" "$PYTHON" scripts/bench/gpu.py --out "$OUT" \
    --budget $((BENCH_LIMIT - 30))

write_summary
rm -rf "$SCRATCH"
cat "$OUT/summary.md"
for entry in "${STAGES[@]}"; do
    IFS='|' read -r _ rc _ _ <<<"$entry"
    if [ "$rc" != 0 ]; then exit 1; fi
done
exit 0
