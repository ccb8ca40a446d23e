"""`make bench`: every benchmark in scripts/bench/, one after another, each in its own process.

Each writes its JSON to bench-results/ and prints its table; docs/benchmarks.md summarises the
figures. Benchmarks compare against peers in the same run (ratios), never against fixed times.

    python scripts/bench/run_all.py [NAME ...]     # e.g. run_all.py forward load
"""
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["forward", "load", "tokenizer_speed", "convert", "download", "first_load", "trainer",
         "real_length", "deploy", "transformers_face", "serve"]


def main(argv) -> int:
    names = argv or ORDER
    unknown = [n for n in names if not (HERE / f"{n}.py").exists()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"=== {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.perf_counter() - start:.0f} s")
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
