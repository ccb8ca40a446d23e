"""Deployment speed at BERT-base size: our eager fp32 forward vs torch.compile (default, and with
inductor's freezing), our PyTorch int8, and ONNX Runtime fp32 and int8 of the exported file.

Same random weights everywhere, eval mode, no_grad, an all-ones mask (``forward.time_case``:
interleaved, rotating order, medians). Cases 1x128 and 8x128. Ratios are eager time / contender
time (above 1: faster than our eager forward). Writes bench-results/deploy.json.

    python scripts/bench/deploy.py [--reps 7] [--layers 12] [--skip-compile]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from forward import BASE, VOCAB, time_case   # scripts/bench/forward.py

from bert_hub import export, quantization
from bert_hub.modeling import BertConfig, BertModel


def build(layers: int, skip_compile: bool, folder: Path):
    torch.manual_seed(0)
    config = BertConfig(VOCAB, **dict(BASE, num_hidden_layers=layers))
    eager = BertModel(config).eval()
    contenders = {"eager fp32": lambda i, t, m: eager(i, t, m, output_all_encoded_layers=False)}
    if not skip_compile:
        import torch._inductor.config as inductor
        compiled = torch.compile(copy.deepcopy(eager))
        contenders["compiled"] = lambda i, t, m: compiled(i, t, m, output_all_encoded_layers=False)

        frozen_model = copy.deepcopy(eager)
        frozen = torch.compile(frozen_model)

        def frozen_call(i, t, m):
            inductor.freezing = True          # read when the graph is compiled (the first call)
            try:
                return frozen(i, t, m, output_all_encoded_layers=False)
            finally:
                inductor.freezing = False
        contenders["compiled+freezing"] = frozen_call
    int8 = quantization.quantize_dynamic(copy.deepcopy(eager))
    contenders["torch int8"] = lambda i, t, m: int8(i, t, m, output_all_encoded_layers=False)

    import onnxruntime as ort
    for name, quantized in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
        path = export.export_onnx(eager, folder / f"{name.split()[-1]}.onnx", int8=quantized)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        contenders[name] = (lambda s: lambda i, t, m: export.run_onnx(s, i, t, m))(session)
    return contenders


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--out", default="bench-results/deploy.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        start = time.perf_counter()
        contenders = build(args.layers, args.skip_compile, Path(tmp))
        ids = torch.randint(1, VOCAB, (1, 128))
        for call in contenders.values():              # compiles here, outside the timings
            call(ids, torch.zeros_like(ids), torch.ones_like(ids))
        print(f"built and compiled in {time.perf_counter() - start:.0f} s")
        results = []
        for batch, seq in ((1, 128), (8, 128)):
            medians = time_case(contenders, batch, seq, args.reps)
            for name, seconds in medians.items():
                results.append(dict(case=f"{batch}x{seq}", contender=name, seconds=seconds,
                                    speedup_vs_eager=medians["eager fp32"] / seconds))
    load_after = os.getloadavg()
    print(f"load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} on "
          f"{os.cpu_count()} CPUs; threads {torch.get_num_threads()}")
    print(f"{'case':<9}{'contender':<20}{'median s':>10}{'x eager':>9}")
    for row in results:
        print(f"{row['case']:<9}{row['contender']:<20}{row['seconds']:>10.4f}"
              f"{row['speedup_vs_eager']:>9.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        reps=args.reps, layers=args.layers, threads=torch.get_num_threads(),
        torch=torch.__version__, machine=platform.processor() or platform.machine(),
        cpus=os.cpu_count(), load_before=load_before, load_after=load_after, results=results),
        indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
