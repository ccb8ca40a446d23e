"""Hostile model folders: the worker that runs the cases ``folder_mutations.py`` makes, on the
TensorFlow campaign's harness (``tf_cases``: worker processes under a memory cap, an alarm per
call, a log the campaign reads).

Each case runs the loaders that read what it changed: ``from_pretrained`` of several heads,
the tokenizer, the resolver, the sentence-embedding pipeline, a Trainer resuming from a
checkpoint, ``bert-hub convert --to-tf``. A call may succeed or raise a
``BertHubError``; anything else, a hang or a crash is a finding. For ``shapes`` cases a typed
error must also name the tensor, both shapes and the file.

Worker:  python tests/fuzz/folder_cases.py --seed S --start A --stop B --out results.jsonl
Replay:  python tests/fuzz/folder_cases.py --seed S --replay INDEX     (prints the traceback)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import folder_mutations  # noqa: E402
import tf_cases  # noqa: E402

CASES: dict = {}          # folder -> the case, for the checks of shapes cases


class VagueShapeError(Exception):
    """A typed error for a shape mismatch that does not say which tensor, shapes and file."""


def _load(target: str, folder: Path, mats, cache: Path) -> None:
    from bert_hub import hub, modeling
    from bert_hub.tokenization import BertTokenizer

    if target == "model":
        modeling.BertModel.from_pretrained(folder)
    elif target == "pretraining":
        modeling.BertForPreTraining.from_pretrained(folder)
    elif target == "classifier":
        modeling.BertForSequenceClassification.from_pretrained(folder)
    elif target == "resolve":
        hub.resolve_model(folder)
    elif target == "tokenizer":
        BertTokenizer.from_pretrained(folder)
    elif target == "sentence":
        from bert_hub.pipelines import pipeline

        pipeline("sentence-embedding", model=folder)(["a b", "c"])
    elif target == "resume":
        from bert_hub.config import BertConfig
        from bert_hub.modeling import BertForSequenceClassification

        config_file = folder / "bert_config.json"
        config = BertConfig.from_json_file(config_file) if config_file.exists() \
            else BertConfig.from_dict(mats.config)
        mats.trainer(BertForSequenceClassification(config, num_labels=3)).load_checkpoint(folder)
    elif target == "cli_to_tf":
        tf_cases._cli(["convert", "--to-tf", "--weights", str(folder / "model.safetensors"),
                       "--config", str(folder / "bert_config.json"),
                       "--out", str(folder / "tf" / "bert_model.ckpt")])
    else:
        raise ValueError(f"unknown target {target}")


def run_target(target: str, folder: Path, mats, cache: Path) -> None:
    from bert_hub.errors import BertHubError

    case = CASES.get(str(folder), {})
    try:
        _load(target, folder, mats, cache)
    except BertHubError as exc:
        key = case.get("key")
        if key and target != "cli_to_tf":   # the file's tensor has another shape: say so exactly
            text = str(exc)
            shape = str(tuple(case["shape"]))
            if key.split(".", 1)[-1] not in text or shape not in text or case["file"] not in text:
                raise VagueShapeError(f"{text[:300]!r} does not name {key}, {shape} and "
                                      f"{case['file']}") from None
        raise


def make_case(seed: int, index: int, mats, workdir: Path) -> dict:
    case = folder_mutations.make_case(seed, index, mats, workdir)
    CASES[case["folder"]] = case
    return case


tf_cases.run_target = run_target
tf_cases.Materials = folder_mutations.Materials
tf_cases.make_case = make_case

if __name__ == "__main__":
    sys.exit(tf_cases.main())
