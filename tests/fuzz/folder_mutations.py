"""Hostile model folders: how each case of the folder campaign is made (``folder_cases.py``
runs them, through the TensorFlow campaign's worker harness).

A case is ``(seed, index)``: every choice comes from ``random.Random(f"folders/{seed}/{index}")``.
Each starts from a real folder a user could have (ours: ``bert_config.json``; a Hugging Face
classifier: ``config.json`` with labels; the same sharded; a sentence-transformers folder; a
Trainer checkpoint) and changes one thing:

- ``json``: one JSON file of the folder (any of them, the safetensors aliases metadata too)
  made hostile: nested thousands deep, nested inside strings (harmless), huge numbers, the
  wrong top-level type, truncated, binary, a byte-order mark, over the size limit, wrong
  types under the keys the loaders read;
- ``shapes``: one tensor of the weights (or of one shard) given another shape, or one size of
  the config changed, so that file and config disagree.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TF_TINY = ROOT / "tests" / "data" / "tf_tiny"

KINDS = {"json": 3, "shapes": 2}
LABELS = {"0": "neg", "1": "pos", "2": "mixed"}
# Which loaders read which file; every case runs the loaders of what it changed.
JSON_TARGETS = {
    "bert_config.json": ("model", "pretraining", "resolve", "tokenizer"),
    "config.json": ("model", "classifier", "resolve", "tokenizer"),
    "tokenizer_config.json": ("tokenizer",),
    "model.safetensors.index.json": ("model", "classifier"),
    "modules.json": ("sentence",),
    "1_Pooling/config.json": ("sentence",),
    "sentence_bert_config.json": ("sentence",),
    "trainer_state.json": ("resume",),
    "aliases": ("pretraining",),
}
SHAPE_TARGETS = {"ours": ("pretraining", "model", "cli_to_tf"), "hf": ("classifier", "model"),
                 "sharded": ("classifier", "model"), "st": ("model", "sentence"),
                 "checkpoint": ("resume", "classifier")}


class Materials:
    """The real folders every case starts from, built once per worker."""

    def __init__(self, root: Path):
        import torch

        from bert_hub import weights
        from bert_hub.config import BertConfig
        from bert_hub.modeling import BertForPreTraining, BertForSequenceClassification, BertModel

        self.root = Path(root)
        self.config = json.loads((TF_TINY / "bert_config.json").read_text())
        config = BertConfig.from_dict(self.config)
        torch.manual_seed(0)
        self.bases = {}

        ours = self._base("ours")
        BertForPreTraining(config).save_pretrained(ours)      # bert_config.json, tied aliases

        hf = self._base("hf")
        classifier = BertForSequenceClassification(config, num_labels=3)
        weights.save_safetensors(classifier.state_dict(), hf / "model.safetensors")
        self._hf_config(hf, "BertForSequenceClassification", labels=True)

        sharded = self._base("sharded")
        self._hf_config(sharded, "BertForSequenceClassification", labels=True)
        state, weight_map = classifier.state_dict(), {}
        keys = sorted(state)
        for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:]), start=1):
            name = f"model-0000{i}-of-00002.safetensors"
            weights.save_safetensors({k: state[k].clone() for k in part}, sharded / name)
            weight_map.update({k: name for k in part})
        (sharded / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}))

        st = self._base("st")
        weights.save_safetensors(BertModel(config).state_dict(), st / "model.safetensors")
        self._hf_config(st, "BertModel")
        (st / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
        (st / "1_Pooling").mkdir()
        (st / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": config.hidden_size, "pooling_mode_cls_token": False,
             "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}))
        (st / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))

        self.bases["checkpoint"] = self.checkpoint(config)

    def _base(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        shutil.copy(TF_TINY / "vocab.txt", folder / "vocab.txt")
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": True, "model_max_length": 16}))
        self.bases[name] = folder
        return folder

    def _hf_config(self, folder: Path, architecture: str, labels: bool = False) -> None:
        data = {**self.config, "model_type": "bert", "architectures": [architecture]}
        if labels:
            data.update(id2label=LABELS, label2id={v: int(k) for k, v in LABELS.items()})
        (folder / "config.json").write_text(json.dumps(data, indent=1))

    def checkpoint(self, config) -> Path:
        """A Trainer checkpoint of a 3-label classifier after one step (bert_config.json, the
        weights, optimizer, RNG and trainer state)."""
        from bert_hub.modeling import BertForSequenceClassification

        trainer = self.trainer(BertForSequenceClassification(config, num_labels=3))
        trainer.train()
        return Path(trainer.checkpoints()[-1])

    def trainer(self, model):
        import torch

        from bert_hub.trainer import Trainer

        ids = torch.randint(1, self.config["vocab_size"], (4, 6), generator=torch.Generator().manual_seed(0))
        data = [{"input_ids": ids[i], "labels": ids[i, 0] % 3} for i in range(4)]
        return Trainer(model, data, batch_size=4, epochs=1, progress=False, seed=1,
                       output_dir=self.root / "runs", save_steps=1)

    def folder(self, base: str, dest: Path) -> Path:
        shutil.copytree(self.bases[base], dest)
        return dest


# --------------------------------------------------------------------------- json
def _nest(rng: random.Random) -> str:
    depth = rng.choice([65, 200, 1000, 5000, 100_000])
    style = rng.choice(["arrays", "objects", "mixed"])
    if style == "arrays":
        return "[" * depth + "]" * depth
    if style == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    opens = [rng.choice(("[", '{"k":')) for _ in range(depth)]
    closes = ["]" if o == "[" else "}" for o in reversed(opens)]
    return "".join(opens) + "0" + "".join(closes)


def _known_key_values(name: str, rng: random.Random) -> dict:
    """Wrong types under the keys the loaders read."""
    odd = rng.choice([None, [], {}, "x", -1, 2**64, 1e400, [[["deep"]]], {"0": {"1": 2}}, True])
    return {
        "config.json": {rng.choice(["id2label", "label2id", "model_type", "architectures",
                                    "hidden_act", "num_labels", "problem_type"]): odd},
        "bert_config.json": {rng.choice(["hidden_size", "vocab_size", "hidden_act",
                                         "layer_norm_eps"]): odd},
        "tokenizer_config.json": {rng.choice(["do_lower_case", "model_max_length"]): odd},
        "model.safetensors.index.json": {"weight_map": odd},
        "1_Pooling/config.json": {rng.choice(["pooling_mode_mean_tokens", "pooling_mode_cls_token"]): odd},
        "sentence_bert_config.json": {"max_seq_length": odd},
        "trainer_state.json": {rng.choice(["global_step", "batch_size", "seed"]): odd},
    }.get(name, {})


def hostile_json(rng: random.Random, original: str, name: str, notes: list) -> bytes:
    op = rng.choice(["nest", "nest", "nest", "in_string", "digits", "top", "truncated", "binary",
                     "bom", "specials", "keys", "keys", "big"])
    notes.append(op)
    value = json.loads(original)
    if op == "nest":
        text = _nest(rng)
        if isinstance(value, dict):
            return (json.dumps(value)[:-1] + f', "{rng.choice(["x", "id2label", "hidden_act"])}": '
                    + text + "}").encode()
        return ("[" + text + "]").encode() if rng.random() < 0.5 else text.encode()
    if op == "in_string":        # brackets inside a string are not nesting: this one is fine
        if isinstance(value, dict):
            value["note"] = "[" * 5000 + '{"' * 100 + "\\u005b"
        return json.dumps(value).encode()
    if op == "digits":
        return json.dumps(value).replace("16", "9" * rng.choice([30, 5000]), 1).encode()
    if op == "top":
        return json.dumps(rng.choice([[value], "config", 30, None, [], {}])).encode()
    if op == "truncated":
        return original.encode()[:rng.randrange(max(1, len(original)))]
    if op == "binary":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if op == "bom":
        return b"\xef\xbb\xbf" + original.encode()
    if op == "specials":
        return json.dumps(value).replace("0.02", rng.choice(["NaN", "Infinity", "-Infinity"]), 1) \
            .replace("true", "NaN", 1).encode()
    if op == "keys" and isinstance(value, dict):
        changed = _known_key_values(name, rng)
        value.update(changed)
        notes.append(str(changed)[:60])
        return json.dumps(value).encode()
    if op == "big":               # over the 16 MB a model folder's JSON may hold
        return b'{"pad": "' + b"x" * (16 << 20) + b'"}'
    return json.dumps(value).encode()


def _rewrite_aliases(folder: Path, rng: random.Random, notes: list) -> None:
    """The safetensors file's own JSON (its aliases metadata) made hostile."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from bert_hub.weights import ALIASES

    path = folder / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata() or {})
    metadata[ALIASES] = hostile_json(rng, metadata[ALIASES], "aliases", notes).decode("utf-8", "replace")
    save_file(tensors, str(path), metadata=metadata)


# How often each file is chosen: the configs most (every load reads one).
JSON_WEIGHTS = {"config.json": 3, "bert_config.json": 2, "tokenizer_config.json": 2}


def case_json(rng: random.Random, mats: Materials, workdir: Path, index: int) -> dict:
    names = sorted(JSON_TARGETS)
    name = rng.choices(names, weights=[JSON_WEIGHTS.get(n, 1) for n in names])[0]
    base = {"config.json": rng.choice(["hf", "sharded", "st"]),"bert_config.json": "ours", "aliases": "ours", "trainer_state.json": "checkpoint",
            "model.safetensors.index.json": "sharded", "modules.json": "st",
            "1_Pooling/config.json": "st", "sentence_bert_config.json": "st"}.get(
        name, rng.choice(["hf", "sharded", "st", "ours"] + ["checkpoint"] * (name != "tokenizer_config.json")))
    folder = mats.folder(base, workdir / f"case{index}")
    notes = [name]
    path = folder / name
    if name == "aliases":
        _rewrite_aliases(folder, rng, notes)
    elif name in ("bert_config.json", "config.json") and not path.exists():
        name = "bert_config.json" if (folder / "bert_config.json").exists() else "config.json"
        path = folder / name
        notes[0] = name
    if name != "aliases":
        path.write_bytes(hostile_json(rng, path.read_text(), name, notes))
    targets = JSON_TARGETS[name]
    if base == "checkpoint" and name != "trainer_state.json":
        targets = targets + ("resume",)
    return {"kind": "json", "base": base, "folder": str(folder), "targets": targets,
            "notes": ", ".join(notes)[:300]}


# --------------------------------------------------------------------------- shapes
def case_shapes(rng: random.Random, mats: Materials, workdir: Path, index: int) -> dict:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    base = rng.choice(sorted(SHAPE_TARGETS))
    folder = mats.folder(base, workdir / f"case{index}")
    case = {"kind": "shapes", "base": base, "folder": str(folder), "targets": SHAPE_TARGETS[base]}
    config_file = folder / ("config.json" if (folder / "config.json").exists() else "bert_config.json")
    if rng.random() < 0.3:      # the config's sizes change, the weights stay
        data = json.loads(config_file.read_text())
        key = rng.choice(["hidden_size", "intermediate_size", "vocab_size", "type_vocab_size",
                          "max_position_embeddings", "labels"])
        if key == "labels" and "id2label" in data:
            data["id2label"] = {str(i): f"L{i}" for i in range(rng.choice([2, 5]))}
            data.pop("label2id", None)
        elif key != "labels":
            data[key] = data[key] + rng.choice([2, 16, -2])
            if key == "hidden_size" and data[key] % data["num_attention_heads"]:
                data[key] = data[key] + 1
        config_file.write_text(json.dumps(data))
        case["notes"] = f"config {key} -> {data.get(key, data.get('id2label'))}"
        return case
    files = sorted(p for p in folder.glob("*.safetensors"))
    path = rng.choice(files)
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    key = rng.choice(sorted(tensors))
    shape = list(tensors[key].shape)
    change = rng.choice(["grow", "shrink", "add_dim", "drop_dim", "transpose"])
    if change == "grow":
        shape[rng.randrange(len(shape))] += rng.choice([1, 3, 16])
    elif change == "shrink":
        axis = rng.randrange(len(shape))
        shape[axis] = max(1, shape[axis] - rng.choice([1, 3]))
    elif change == "add_dim":
        shape.insert(rng.randrange(len(shape) + 1), rng.choice([1, 2]))
    elif change == "drop_dim" and len(shape) > 1:
        shape = [shape[0] * shape[1]] + shape[2:]
    else:
        shape = shape[::-1] if len(shape) > 1 and shape[0] != shape[-1] else shape + [1]
    tensors[key] = torch.zeros(shape, dtype=tensors[key].dtype)
    save_file(tensors, str(path), metadata=metadata)
    case.update(notes=f"{path.name}: {key} {change} -> {tuple(shape)}", key=key,
                file=path.name, shape=list(shape))
    return case


def make_case(seed: int, index: int, mats: Materials, workdir: Path) -> dict:
    rng = random.Random(f"folders/{seed}/{index}")
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    case = (case_json if kind == "json" else case_shapes)(rng, mats, workdir, index)
    return {"seed": seed, "index": index, "notes": "", **case}
