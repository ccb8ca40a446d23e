"""Hostile inputs for the TensorFlow reader, the conversion and configs: the worker that runs
the cases ``tf_mutations.py`` makes.

Each case runs the public entry points on its files: the reader, the conversions,
``load_tf_weights_in_bert``, ``from_pretrained`` of the Google folder and ``bert-hub convert``
in both directions. A call may succeed or raise a ``BertHubError``; anything else (another
exception, a hang, a huge allocation, a crash, a CLI failure that is not one
``bert-hub: error:`` line) is a finding.

Worker:  python tests/fuzz/tf_cases.py --seed S --start A --stop B --out results.jsonl
Replay:  python tests/fuzz/tf_cases.py --seed S --replay INDEX     (prints the traceback)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tf_mutations import (  # noqa: E402
    CHECKPOINT_TARGETS,
    KINDS,
    PREFIX,
    Materials,
    make_case,
)

__all__ = ["CHECKPOINT_TARGETS", "KINDS", "Materials", "make_case", "run_case", "main"]


# --------------------------------------------------------------------------- targets
def _cli(args: list) -> None:
    """bert-hub in-process: a failure must be exactly one 'bert-hub: error:' line."""
    from bert_hub import cli

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(args)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code != 0 and (len(lines) != 1 or not lines[0].startswith("bert-hub: error: ")):
        raise CliNotOneLine(f"exit {code}, stderr: {err.getvalue()[-500:]!r}")


class CliNotOneLine(Exception):
    pass


def run_target(target: str, folder: Path, mats: Materials, cache: Path) -> None:
    prefix, config = folder / PREFIX, folder / "bert_config.json"
    out = folder / "out"
    if target == "read":
        from bert_hub.tf_checkpoint import CheckpointReader

        reader = CheckpointReader(prefix)
        reader.list_variables()
        reader.data_bytes
        for name in reader.names()[:40]:
            reader.get_array(name, copy=len(name) % 2 == 0)
        for name in reader.names()[:5]:
            reader.get_tensor(name)
        reader.close()
    elif target == "convert_safetensors":
        from bert_hub.convert import convert_tf_checkpoint

        convert_tf_checkpoint(prefix, config, out / "model.safetensors")
    elif target == "convert_bin":
        from bert_hub.convert import convert_tf_checkpoint

        convert_tf_checkpoint(prefix, config, out / "pytorch_model.bin")
    elif target == "infer_config":
        from bert_hub.convert import tf_to_state_dict

        tf_to_state_dict(prefix)
    elif target == "load_tf_weights":
        from bert_hub.config import BertConfig
        from bert_hub.convert import load_tf_weights_in_bert
        from bert_hub.modeling import BertForPreTraining

        load_tf_weights_in_bert(BertForPreTraining(BertConfig.from_dict(mats.config)), prefix)
    elif target == "from_pretrained":
        from bert_hub.modeling import BertForPreTraining

        BertForPreTraining.from_pretrained(folder, cache_dir=cache)
    elif target == "cli_convert":
        _cli(["convert", "--tf-checkpoint", str(prefix), "--config", str(config),
              "--out", str(out / "cli.safetensors")])
    elif target == "cli_to_tf":
        _cli(["convert", "--to-tf", "--weights", str(mats.safetensors), "--config", str(config),
              "--out", str(out / "tf" / PREFIX)])
    elif target == "config":
        import torch

        from bert_hub.config import BertConfig
        from bert_hub.convert import name_table
        from bert_hub.modeling import BertForPreTraining

        cfg = BertConfig.from_json_file(config)
        repr(cfg)
        cfg.to_json_string()
        cfg.validate()
        name_table(cfg)
        with torch.device("meta"):
            BertForPreTraining(cfg)
    elif target == "tokenizer":
        from bert_hub.tokenization import BertTokenizer

        BertTokenizer.from_pretrained(str(folder))
    else:
        raise ValueError(f"unknown target {target}")


# --------------------------------------------------------------------------- worker
class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that ran past its time (a hang)."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def run_case(case: dict, mats: Materials, cache: Path, case_timeout: float,
             verbose: bool = False) -> list:
    """Run every target of ``case``; return the findings (empty: every call was ok or typed)."""
    from bert_hub.errors import BertHubError

    findings = []
    for target in case["targets"]:
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, case_timeout)
        try:
            run_target(target, Path(case["folder"]), mats, cache)
        except BertHubError:
            pass
        except CaseTimeout:
            findings.append({"target": target, "error": f"hang: still running after "
                                                        f"{case_timeout:g} s"})
        except BaseException as exc:  # noqa: BLE001 - every other exception is a finding
            if verbose:
                traceback.print_exc()
            tb = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(tb))
            findings.append({"target": target,
                             "error": f"{type(exc).__name__}: {str(exc)[:300]} [{where}]"})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if verbose:
            print(f"  {target}: {time.perf_counter() - start:.3f} s")
    return findings


def _limit_memory(limit_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def worker(seed: int, start: int, stop: int, out: Path, case_timeout: float,
           memory_limit: int) -> None:
    _limit_memory(memory_limit)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _on_alarm)
    with tempfile.TemporaryDirectory(prefix="fuzz_tf_") as tmp, open(out, "a") as log:
        tmp = Path(tmp)
        os.environ["BERT_HUB_CACHE"] = str(tmp / "cache")
        mats = Materials(tmp / "materials")
        for index in range(start, stop):
            log.write(json.dumps({"start": index}) + "\n")
            log.flush()
            began = time.perf_counter()
            case = make_case(seed, index, mats, tmp)
            log.write(json.dumps({"case": {k: v for k, v in case.items() if k != "folder"}}) + "\n")
            log.flush()
            findings = run_case(case, mats, tmp / "cache", case_timeout)
            shutil.rmtree(case["folder"], ignore_errors=True)
            case.pop("folder")
            log.write(json.dumps({"done": index, "case": case, "findings": findings,
                                  "seconds": round(time.perf_counter() - began, 4)}) + "\n")
            log.flush()


def replay(seed: int, index: int, case_timeout: float) -> int:
    """Run one case in this process, printing each target's time and any traceback."""
    signal.signal(signal.SIGALRM, _on_alarm)
    with tempfile.TemporaryDirectory(prefix="fuzz_tf_replay_") as tmp:
        tmp = Path(tmp)
        os.environ["BERT_HUB_CACHE"] = str(tmp / "cache")
        mats = Materials(tmp / "materials")
        case = make_case(seed, index, mats, tmp)
        print(f"case {seed}/{index}: {case['kind']} on {case['base']}: {case['notes']}")
        findings = run_case(case, mats, tmp / "cache", case_timeout, verbose=True)
        for finding in findings:
            print(f"FINDING {finding['target']}: {finding['error']}")
        return 1 if findings else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--replay", type=int, default=None)
    parser.add_argument("--case-timeout", type=float, default=10.0)
    parser.add_argument("--memory-limit", type=int, default=3 << 30)
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.seed, args.replay, args.case_timeout)
    worker(args.seed, args.start, args.stop, args.out, args.case_timeout, args.memory_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
