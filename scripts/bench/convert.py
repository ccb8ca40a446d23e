"""TF checkpoint -> PyTorch file at BERT-base size: bert_hub vs pytorch-pretrained-bert 0.6.2
(TensorFlow-based) vs the floor.

A BERT-base-sized checkpoint (12 layers, hidden 768, vocab 30522: a 440 MB data file) is written
once by TensorFlow (scripts/make_tf_checkpoint.py) and kept under bench-results/. Each contender
is a fresh process from ``python`` to a saved file, timed and measured (peak RSS) with
``/usr/bin/time -v``; contenders run interleaved with a rotating order, medians reported.

    ours .safetensors   bert_hub.convert.convert_tf_checkpoint(..., "model.safetensors")
    ours .bin           the same to torch.save format
    0.6.2 .bin          pytorch_pretrained_bert's convert_tf_checkpoint_to_pytorch
    floor               read the data file, write it again (no parsing, no torch)
    import torch        a process that only imports torch (for reference)

Targets: ours >= 4x faster than 0.6.2 end to end; peak RSS <= 1.2x the data file.
Prints a table, writes bench-results/convert.json.

    python scripts/bench/convert.py [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
        "intermediate_size": 3072, "vocab_size": 30522, "max_position_embeddings": 512,
        "type_vocab_size": 2}


def make_checkpoint(folder: Path) -> Path:
    """The BERT-base checkpoint, written by TensorFlow in a subprocess (once)."""
    prefix = folder / "bert_model.ckpt"
    if not Path(str(prefix) + ".index").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tf_checkpoint.py"),
                        str(folder), "--layers", "12", "--hidden", "768", "--heads", "12",
                        "--intermediate", "3072", "--vocab", "30522", "--max-position", "512",
                        "--no-adam", "--with-config", "--with-vocab"],
                       check=True, capture_output=True, timeout=600)
    return prefix


def contenders(prefix: Path, config: Path, out: Path) -> dict:
    data = f"{prefix}.data-00000-of-00001"
    ours = ("from bert_hub.convert import convert_tf_checkpoint as c; "
            "c({p!r}, {c!r}, {o!r})")
    return {
        "ours .safetensors": ours.format(p=str(prefix), c=str(config),
                                         o=str(out / "model.safetensors")),
        "ours .bin": ours.format(p=str(prefix), c=str(config), o=str(out / "ours.bin")),
        "0.6.2 .bin": ("from pytorch_pretrained_bert.convert_tf_checkpoint_to_pytorch import "
                       "convert_tf_checkpoint_to_pytorch as c; "
                       f"c({str(prefix)!r}, {str(config)!r}, {str(out / 'ppb.bin')!r})"),
        "floor": (f"d = open({data!r}, 'rb').read(); "
                  f"open({str(out / 'floor.bin')!r}, 'wb').write(d)"),
        "import torch": "import torch",
    }


def run_once(code: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS bytes) of a fresh `python -c code` under
    /usr/bin/time -v. CPU time (user + sys) is the steadier figure on a shared machine."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], check=False,
                          env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"contender failed:\n{code}\n{proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): (\S+)", proc.stderr).group(1))
              for kind in ("User", "System"))
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, cpu, int(rss.group(1)) * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--results", default=str(ROOT / "bench-results"))
    args = ap.parse_args(argv)
    results_dir = Path(args.results)
    prefix = make_checkpoint(results_dir / "tf_bert_base")
    config = prefix.parent / "bert_config.json"
    out = results_dir / "convert_out"
    out.mkdir(parents=True, exist_ok=True)
    data_bytes = os.path.getsize(f"{prefix}.data-00000-of-00001")
    codes = contenders(prefix, config, out)
    names = list(codes)
    for name in names:  # warm-up: page cache, .pyc files
        run_once(codes[name])
    load_before = os.getloadavg()[0]
    samples: dict[str, list[tuple[float, float, int]]] = {n: [] for n in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            samples[name].append(run_once(codes[name]))
    for f in out.iterdir():
        f.unlink()

    def median(name, i):
        return statistics.median(sample[i] for sample in samples[name])

    rows = []
    for name in names:
        seconds, cpu, rss = median(name, 0), median(name, 1), median(name, 2)
        rows.append({"contender": name, "seconds": seconds, "cpu_seconds": cpu,
                     "peak_rss_mb": rss / 1e6, "rss_vs_data_file": rss / data_bytes,
                     "speedup_vs_062": median("0.6.2 .bin", 0) / seconds,
                     "cpu_speedup_vs_062": median("0.6.2 .bin", 1) / cpu,
                     "samples": samples[name]})
    print(f"data file {data_bytes / 1e6:.0f} MB, {args.reps} reps, medians; "
          f"load average before/after {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"{'contender':<20}{'wall s':>8}{'cpu s':>8}{'peak RSS MB':>13}{'RSS/data':>10}"
          f"{'wall vs 0.6.2':>15}{'cpu vs 0.6.2':>14}")
    for r in rows:
        print(f"{r['contender']:<20}{r['seconds']:>8.2f}{r['cpu_seconds']:>8.2f}"
              f"{r['peak_rss_mb']:>13.0f}{r['rss_vs_data_file']:>10.2f}"
              f"{r['speedup_vs_062']:>14.1f}x{r['cpu_speedup_vs_062']:>13.1f}x")
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "convert.json").write_text(json.dumps({
        "reps": args.reps, "data_file_bytes": data_bytes,
        "load_average": [load_before, os.getloadavg()[0]], "python": sys.version.split()[0],
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "targets": {"speedup_vs_062": 4.0, "rss_vs_data_file": 1.2}, "results": rows,
    }, indent=2))
    print(f"wrote {results_dir / 'convert.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
