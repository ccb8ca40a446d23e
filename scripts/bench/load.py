"""Fresh process to a ready BERT-base, from local folders with the same (random) weights.

Contenders, each a new `python -c` process timed from spawn to exit, run interleaved (rotating
order), medians reported:
  floor                    import torch + safe_open of model.safetensors (list its tensors)
  bert_hub (ours)          BertModel.from_pretrained(folder with bert_config.json + model.safetensors)
  bert_hub (0.6.2 folder)  BertModel.from_pretrained(bert_config.json + pytorch_model.bin)
  bert_hub (HF folder)     BertModel.from_pretrained(config.json + model.safetensors)
  ppb-0.6.2                pytorch_pretrained_bert BertModel.from_pretrained(its folder)
  transformers             transformers BertModel.from_pretrained(HF folder), sdpa
With --forward each model process also runs one 1x8 forward (every weight page touched except
most of the embedding table). Prints a table, writes bench-results/load.json.

    python scripts/bench/load.py [--reps 5] [--forward]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)
VOCAB = 30522

FORWARD = ("\nimport torch\nwith torch.no_grad():\n"
           "    ids = torch.arange(1, 9)[None]\n    {call}\n")


def make_folders(root: Path) -> dict:
    """Write the three folders (same weights) and return their paths."""
    import torch
    import transformers

    from bert_hub.modeling import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(VOCAB, **BASE))
    ours = model.save_pretrained(root / "ours")
    ppb = root / "ppb"
    ppb.mkdir()
    torch.save(model.state_dict(), ppb / "pytorch_model.bin")
    model.config.to_json_file(ppb / "bert_config.json")
    hf = transformers.BertModel(transformers.BertConfig(vocab_size=VOCAB, **BASE))
    hf.load_state_dict(model.state_dict(), strict=False)
    hf.save_pretrained(root / "hf")
    return {"ours": ours, "ppb": ppb, "hf": root / "hf"}


def programs(folders: dict, forward: bool) -> dict:
    ours_call = "model(ids)"
    hf_call = "model(input_ids=ids)"
    load_ours = "from bert_hub.modeling import BertModel\nmodel = BertModel.from_pretrained({!r})"
    progs = {
        "floor": ("import torch\nfrom safetensors import safe_open\n"
                  f"with safe_open({str(folders['ours'] / 'model.safetensors')!r}, 'pt') as f:\n"
                  "    names = list(f.keys())\n"),
        "bert_hub (ours)": load_ours.format(str(folders["ours"])),
        "bert_hub (0.6.2 folder)": load_ours.format(str(folders["ppb"])),
        "bert_hub (HF folder)": load_ours.format(str(folders["hf"])),
        "ppb-0.6.2": ("from pytorch_pretrained_bert import BertModel\n"
                      f"model = BertModel.from_pretrained({str(folders['ppb'])!r}).eval()"),
        "transformers": ("from transformers import BertModel\n"
                         f"model = BertModel.from_pretrained({str(folders['hf'])!r}, "
                         "attn_implementation='sdpa').eval()"),
    }
    if forward:
        for name in progs:
            if name != "floor":
                call = hf_call if name == "transformers" else ours_call
                progs[name] += FORWARD.format(call=call)
    return progs


def run_once(code: str) -> float:
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error", PYTHONWARNINGS="ignore",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=300,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"contender failed:\n{code}\n{done.stderr}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--forward", action="store_true")
    parser.add_argument("--out", default="bench-results/load.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bert_hub_load_") as tmp:
        progs = programs(make_folders(Path(tmp)), args.forward)
        names = list(progs)
        for name in names:                               # warm the page cache and .pyc files
            run_once(progs[name])
        times = {name: [] for name in names}
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                times[name].append(run_once(progs[name]))
    medians = {name: statistics.median(v) for name, v in times.items()}
    floor, reference = medians["floor"], medians["transformers"]
    print(f"{'contender':<26}{'median s':>10}{'x transformers':>16}{'- floor s':>11}")
    rows = []
    for name in names:
        rows.append(dict(contender=name, seconds=medians[name], all=times[name],
                         vs_transformers=medians[name] / reference,
                         over_floor=medians[name] - floor))
        print(f"{name:<26}{medians[name]:>10.3f}{medians[name] / reference:>16.3f}"
              f"{medians[name] - floor:>11.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(reps=args.reps, forward=args.forward, results=rows), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
