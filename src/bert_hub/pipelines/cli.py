"""``bert-hub run TASK MODEL [TEXT ...]``: a pipeline from the command line, one JSON result per
input on stdout (texts from the arguments, or one per line of stdin)."""
from __future__ import annotations

import argparse
import inspect
import json
import sys

from ..errors import InvalidInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import ALIASES, TASKS
    parser.add_argument("task", metavar="TASK", help=f"one of {', '.join(list(TASKS) + list(ALIASES))}")
    parser.add_argument("model", metavar="MODEL",
                        help="registry name, folder, URL or Hugging Face Hub id (org/name)")
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="inputs (default: one per line of stdin); question-answering: --question/--context")
    parser.add_argument("--question", help="question-answering: the question")
    parser.add_argument("--context", help="question-answering: the context")
    parser.add_argument("--text-pair", help="text-classification: the second text of a pair")
    parser.add_argument("--top-k", type=int, help="fill-mask, text-classification, question-answering")
    parser.add_argument("--aggregation-strategy", choices=("none", "simple", "first", "average", "max"),
                        help="token-classification (default none)")
    parser.add_argument("--pooling", choices=("mean", "cls"), help="sentence-embedding / feature-extraction")
    parser.add_argument("--normalize", action="store_true", help="embeddings: unit length")
    parser.add_argument("--revision", help="Hugging Face Hub: branch, tag or commit")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, default=8)


def run(args) -> int:
    from . import pipeline, task_class
    from .question_answering import QuestionAnsweringPipeline
    cls = task_class(args.task)
    pipe = pipeline(args.task, model=args.model, device=args.device, revision=args.revision,
                    cache_dir=args.cache_dir, batch_size=args.batch_size)
    options = {k: v for k, v in (("top_k", args.top_k),
                                 ("aggregation_strategy", args.aggregation_strategy),
                                 ("pooling", args.pooling),
                                 ("normalize", True if args.normalize else None)) if v is not None}
    accepted = inspect.signature(pipe.__call__).parameters
    wrong = [k for k in options if k not in accepted]
    if wrong:
        raise InvalidInputError(f"--{wrong[0].replace('_', '-')} does not apply to {args.task}")
    if cls is QuestionAnsweringPipeline:
        if not (args.question and args.context) or args.texts:
            raise InvalidInputError("question-answering takes --question TEXT --context TEXT")
        results = [pipe(question=args.question, context=args.context, **options)]
    else:
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not texts:
            raise InvalidInputError(f"no input: pass TEXT arguments to `bert-hub run {args.task}`, or "
                                    "lines on stdin")
        if args.text_pair is not None:
            texts = [{"text": t, "text_pair": args.text_pair} for t in texts]
        results = pipe(texts, **options)
    for result in results:
        print(json.dumps(_plain(result), ensure_ascii=False))
    return 0


def _plain(value):
    """Tensors as lists, for JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
