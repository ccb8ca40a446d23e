"""The ``bert-hub`` command. Every failure we foresee is a ``BertHubError``: it becomes one clear
line on stderr and a non-zero exit code, never a traceback. torch is imported only by the
subcommands that need it, so ``download``, ``list`` and ``cache`` stay light."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import List, Optional

from pathlib import Path

from . import __version__
from .errors import ArchiveLayoutError, BertHubError, EntryNotFoundError
from .filenames import CONFIG_NAME, HF_CONFIG_NAME, TF_CHECKPOINT_NAME

EXIT_FAILURE = 1
EXIT_USAGE = 2       # as argparse's own usage errors
EXIT_INTERRUPTED = 130


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _root(args):
    from .cache import cache_root
    return cache_root(args.cache_dir)


# ----------------------------------------------------------------------------------------------
# Subcommands


def cmd_download(args) -> int:
    from . import hub
    for name in args.names:
        start = time.perf_counter()
        folder = hub.download_model(name, cache_dir=args.cache_dir, force_download=args.force,
                                    convert=not args.no_convert)
        print(f"{name}: {folder} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_list(args) -> int:
    if args.hf:
        return _list_hf(args)
    from .cache import list_entries
    from .registry import load_registry
    entries = {entry.name: entry for entry in list_entries(_root(args))}
    rows = [("NAME", "ALIASES", "CACHED", "SIZE")]
    for spec in load_registry():
        entry = entries.get(spec.name)
        cached = "no" if entry is None else "damaged" if entry.problem else "yes"
        rows.append((spec.name, ",".join(spec.aliases) or "-", cached,
                     _human(entry.size) if entry is not None else "-"))
    _print_table(rows)
    return 0


def _list_hf(args) -> int:
    """What the Hugging Face cache holds that we can load (and why the rest cannot be)."""
    from .hf_hub import cached_models, hf_cache_dir
    loadable, skipped = cached_models(args.cache_dir)
    rows = [("REPO", "REFS", "COMMIT", "ARCHITECTURE", "WEIGHTS", "SIZE")]
    rows += [(m.repo_id, ",".join(m.refs) or "-", m.commit[:10], m.architecture, m.weights,
              _human(m.size)) for m in loadable]
    _print_table(rows)
    print(f"{len(loadable)} loadable revision(s) in {hf_cache_dir(args.cache_dir)}")
    for repo_id, reason in skipped:
        print(f"not loadable: {repo_id}: {reason}")
    return 0


def cmd_convert(args) -> int:
    from . import convert
    if args.to_tf:
        if not args.weights:
            raise _usage("--to-tf needs --weights SOURCE (a .safetensors or .bin file, or a model "
                         "folder, archive, URL or registry name)")
        weights, config = _weights_and_config(args)
        convert.export_tf_checkpoint(weights, config, args.out)
    else:
        if not args.tf_checkpoint:
            raise _usage("convert needs --tf-checkpoint SOURCE (a checkpoint prefix such as "
                         "path/bert_model.ckpt, or a Google folder, archive, URL or registry "
                         "name), or --to-tf")
        prefix, config = _checkpoint_and_config(args)
        convert.convert_tf_checkpoint(prefix, config, args.out)
    print(f"wrote {args.out}")
    return 0


def _checkpoint_and_config(args):
    """--tf-checkpoint as a prefix (its config beside it unless --config), or anything the hub
    resolves to a folder holding a Google checkpoint."""
    from . import hub
    source = args.tf_checkpoint
    if Path(f"{source}.index").expanduser().is_file():
        if args.config:
            return source, args.config
        return source, _config_beside(Path(source).expanduser(), args)
    files = hub.resolve_model(source, cache_dir=args.cache_dir, need_weights=False)
    if files.tf_checkpoint is None:
        raise ArchiveLayoutError(
            f"{source!r} holds no TensorFlow checkpoint ({TF_CHECKPOINT_NAME}.index or another "
            "*.index): pass a Google folder, or the checkpoint prefix itself")
    return files.tf_checkpoint, args.config or _required_config(files, source)


def _weights_and_config(args):
    """--weights as a .safetensors / .bin file (its config beside it unless --config), or
    anything the hub resolves to a model with weights."""
    from . import hub
    path = Path(args.weights).expanduser()
    if path.is_file() and path.suffix in (".safetensors", ".bin"):
        return path, args.config or _config_beside(path, args)
    files = hub.resolve_model(args.weights, cache_dir=args.cache_dir)
    if files.weights_file is None:   # a read-only Google folder: it is a TensorFlow checkpoint
        raise _usage(f"{args.weights!r} is already a TensorFlow checkpoint "
                     f"({files.tf_checkpoint}); --to-tf exports PyTorch weights")
    return files.weights_file, args.config or _required_config(files, args.weights)


def _config_beside(path: Path, args):
    from . import hub
    try:
        files = hub.resolve_model(path.parent, cache_dir=args.cache_dir, need_weights=False)
    except EntryNotFoundError:
        files = None
    return _required_config(files, str(path))


def _required_config(files, source: str):
    if files is None or files.config_file is None:
        raise _usage(f"no {CONFIG_NAME} (or {HF_CONFIG_NAME}) found with {source!r}: pass --config")
    return files.config_file


def cmd_cache(args) -> int:
    from . import cache
    root = _root(args)
    if args.action == "ls":
        entries = cache.list_entries(root)
        rows = [("NAME", "SIZE", "CONVERTED", "SOURCE")]
        rows += [(e.name, _human(e.size), "yes" if e.converted else "no",
                  f"DAMAGED: {e.problem}" if e.problem else e.source) for e in entries]
        _print_table(rows)
        print(f"{len(entries)} entries, {_human(sum(e.size for e in entries))} in {root}")
        damaged = [e.name for e in entries if e.problem]
        if damaged:
            print(f"{len(damaged)} damaged (never served): remove with `bert-hub cache rm "
                  f"{' '.join(damaged)}` or `bert-hub cache prune`.", file=sys.stderr)
        return 0
    if args.action == "verify":
        entries = [cache.find_entry(root, n) for n in args.names] if args.names else cache.list_entries(root)
        bad = 0
        for entry in entries:
            problems = cache.verify_entry(entry)
            bad += bool(problems)
            print(f"{entry.name}: {'ok' if not problems else 'CORRUPT'}")
            for problem in problems:
                print(f"  {problem}")
        if bad:
            print(f"{bad} corrupt entr{'y' if bad == 1 else 'ies'}: remove with `bert-hub cache rm NAME` "
                  f"and download again.", file=sys.stderr)
            return EXIT_FAILURE
        return 0
    if args.action == "rm":
        if not args.names:
            raise _usage("cache rm needs at least one NAME (see `bert-hub cache ls`)")
        for name in args.names:
            entry = cache.remove_entry(root, name)
            print(f"removed {entry.name} ({_human(entry.size)})")
        return 0
    if args.action == "prune":
        removed = cache.prune(root)
        for path in removed:
            print(f"removed {path}")
        print(f"{len(removed)} leftover item(s) removed")
        return 0
    raise _usage(f"unknown cache action {args.action!r}")


def cmd_env(args) -> int:
    from .cache import cache_root, is_offline
    rows = [("bert_hub", __version__), ("python", platform.python_version()),
            ("platform", platform.platform())]
    for module in ("torch", "numpy", "requests", "safetensors", "tokenizers", "tensorflow"):
        rows.append((module, _version_of(module)))
    rows += [("cache dir", str(cache_root(args.cache_dir))),
             ("offline", "yes" if is_offline() else "no"),
             ("endpoint", os.environ.get("BERT_HUB_ENDPOINT", "(registry URLs)")),
             ("extra registry", os.environ.get("BERT_HUB_REGISTRY", "-"))]
    _print_table(rows)
    return 0


def _version_of(module: str) -> str:
    from importlib import metadata
    dist = {"tensorflow": "tensorflow-cpu"}.get(module, module)
    for candidate in (dist, module):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def cmd_run(args) -> int:
    from .pipelines.cli import run
    return run(args)


def cmd_serve(args) -> int:
    from .serve.cli import run
    return run(args)


def cmd_export(args) -> int:
    from . import export
    kwargs = {}
    if args.num_labels is not None:
        kwargs["num_labels"] = args.num_labels
    if args.num_choices is not None:
        kwargs["num_choices"] = args.num_choices
    start = time.perf_counter()
    model = export.load_for_export(args.model, args.head, cache_dir=args.cache_dir, **kwargs)
    path = export.export_onnx(model, args.onnx, int8=args.int8,
                              opset=args.opset or export.OPSET, verify=not args.no_verify)
    checked = "" if args.no_verify else ", checked against PyTorch with ONNX Runtime"
    print(f"wrote {path} ({_human(path.stat().st_size)}, {args.head}"
          f"{', int8' if args.int8 else ''}{checked}; {time.perf_counter() - start:.1f} s)")
    return 0


def cmd_demo(args) -> int:
    from .demo import DEFAULT_TEXTS, run_demo
    run_demo(cache_dir=args.cache_dir, output_dir=args.output_dir,
             texts=args.text or DEFAULT_TEXTS, epochs=args.epochs)
    return 0


# ----------------------------------------------------------------------------------------------
# Plumbing


class _UsageError(BertHubError, ValueError):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _print_table(rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bert-hub", description="Google's BERT checkpoints for PyTorch: download, convert, cache.")
    parser.add_argument("--version", action="version", version=f"bert_hub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_cache_dir(p):
        p.add_argument("--cache-dir", default=None,
                       help="cache root (default: BERT_HUB_CACHE, else ~/.cache/bert_hub)")
        return p

    p = with_cache_dir(sub.add_parser("download", help="download (and convert) models into the cache"))
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="registry name or alias, URL, archive, or Hugging Face Hub id (org/name)")
    p.add_argument("--no-convert", action="store_true", help="skip the TF -> PyTorch conversion")
    p.add_argument("--force", action="store_true", help="download again even when cached")
    p.set_defaults(func=cmd_download)

    p = with_cache_dir(sub.add_parser("list", help="the registry: names, aliases, cached or not"))
    p.add_argument("--hf", action="store_true",
                   help="instead: the BERT models in the Hugging Face cache (--cache-dir: that cache)")
    p.set_defaults(func=cmd_list)

    p = with_cache_dir(sub.add_parser("convert", help="TensorFlow checkpoint <-> PyTorch weights"))
    p.add_argument("--tf-checkpoint", metavar="SOURCE",
                   help="checkpoint prefix (e.g. path/bert_model.ckpt), or a Google folder, "
                        "archive, URL or registry name")
    p.add_argument("--config", help="bert_config.json (default: the one beside the checkpoint "
                                    "or weights)")
    p.add_argument("--out", required=True,
                   help="output: a .safetensors or .bin file (or a checkpoint prefix with --to-tf)")
    p.add_argument("--to-tf", action="store_true", help="write a TensorFlow checkpoint instead")
    p.add_argument("--weights", metavar="SOURCE",
                   help="with --to-tf: a .safetensors or .bin file, or a model folder, archive, "
                        "URL or registry name")
    p.set_defaults(func=cmd_convert)

    p = with_cache_dir(sub.add_parser("cache", help="inspect and clean the cache"))
    p.add_argument("action", choices=("ls", "verify", "rm", "prune"))
    p.add_argument("names", nargs="*", metavar="NAME")
    p.set_defaults(func=cmd_cache)

    p = with_cache_dir(sub.add_parser("env", help="versions, cache dir, offline state"))
    p.set_defaults(func=cmd_env)

    p = with_cache_dir(sub.add_parser("run", help="a pipeline (fill-mask, ner, ...): one JSON result per input"))
    from .pipelines.cli import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_run)

    p = with_cache_dir(sub.add_parser("export", help="a model as an ONNX file (optionally int8), "
                                                     "checked with ONNX Runtime"))
    p.add_argument("model", metavar="MODEL",
                   help="registry name, model folder, archive, URL or Hugging Face Hub id")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--head", default="model",
                   help="model, pretraining, masked-lm, next-sentence, sequence-classification, "
                        "multiple-choice, token-classification or question-answering "
                        "(default: model, the encoder)")
    p.add_argument("--num-labels", type=int, default=None,
                   help="classification heads: number of labels (default: the config's)")
    p.add_argument("--num-choices", type=int, default=None, help="multiple-choice: choices")
    p.add_argument("--int8", action="store_true",
                   help="quantise the linear layers to int8 (ONNX Runtime, per channel)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check of ONNX Runtime's output against PyTorch's")
    p.set_defaults(func=cmd_export)

    p = with_cache_dir(sub.add_parser(
        "serve", help="an inference server (TEI, OpenAI and Hugging Face routes) for one model"))
    from .serve.cli import add_arguments as add_serve_arguments
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)

    p = with_cache_dir(sub.add_parser(
        "demo", help="the embedded demo model through the hub, fine-tuned, saved, reloaded, "
                     "asked through a pipeline; offline"))
    from .demo import DEFAULT_OUTPUT_DIR, TRAINING
    p.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                   help="where the loss curve, metrics.jsonl and the fine-tuned model go "
                        "(default: %(default)s)")
    p.add_argument("--text", action="append", metavar="TEXT",
                   help="a text for the fine-tuned classifier (repeat for more; default: four "
                        "examples)")
    p.add_argument("--epochs", type=int, default=TRAINING["epochs"],
                   help="passes over the labelled set (default: %(default)s)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import logging
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except _UsageError as exc:
        print(f"bert-hub: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BertHubError as exc:
        print(f"bert-hub: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:   # a path we could not read or write: one line too, no traceback
        print(f"bert-hub: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("bert-hub: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
