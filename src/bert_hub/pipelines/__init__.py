"""Ready-made inference: ``bert_hub.pipeline(task, model=...)``, with the task names, inputs and
outputs of the ``transformers`` pipelines::

    from bert_hub import pipeline
    fill = pipeline("fill-mask", model="bert-base-uncased")
    fill("Paris is the [MASK] of France.")          # [{"score", "token", "token_str", "sequence"}, ...]
    ner = pipeline("ner", model="dslim/bert-base-NER", aggregation_strategy="simple")
    ner("John lives in Paris")                      # [{"entity_group", "score", "word", "start", "end"}, ...]

Tasks: fill-mask, text-classification (sentiment-analysis), token-classification (ner),
question-answering, feature-extraction, sentence-embedding. ``model`` is anything
``from_pretrained`` loads (registry name, folder, URL, Hugging Face Hub id) or a model object
(then ``tokenizer`` is needed too). Lists of inputs run in length-sorted batches.
"""
from __future__ import annotations

import difflib
import os
from importlib import import_module
from typing import Optional

from ..errors import InvalidInputError, UnknownTaskError

# Task -> (module, class); imported on first use, so `bert-hub --help` never imports torch.
TASKS = {
    "fill-mask": ("fill_mask", "FillMaskPipeline"),
    "text-classification": ("classification", "TextClassificationPipeline"),
    "token-classification": ("classification", "TokenClassificationPipeline"),
    "question-answering": ("question_answering", "QuestionAnsweringPipeline"),
    "feature-extraction": ("embeddings", "FeatureExtractionPipeline"),
    "sentence-embedding": ("embeddings", "SentenceEmbeddingPipeline"),
}
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
_CLASSES = {cls: module for module, cls in TASKS.values()} | {"Pipeline": "base"}

__all__ = ["pipeline", "task_class", "TASKS", "ALIASES", *_CLASSES]


def pipeline(task: str, model=None, tokenizer=None, *, device=None, torch_dtype=None,
             batch_size: int = 8, progress: Optional[bool] = None, revision: Optional[str] = None,
             token=None, cache_dir=None, local_files_only: bool = False, use_fast: bool = False,
             **task_options):
    """A callable for ``task`` running ``model``.

    ``device`` ("cpu", "cuda", "cuda:1", or transformers' -1 / 0 / 1 ...) and ``torch_dtype``
    place the model; ``revision``, ``token``, ``cache_dir``, ``local_files_only`` are
    ``from_pretrained``'s; ``task_options`` go to the task (e.g. ``pooling="cls"`` for
    sentence-embedding)."""
    cls = task_class(task)
    if model is None:
        raise InvalidInputError(
            f"pipeline({task!r}) needs model=: a registry name, a folder, a URL or a Hugging Face "
            "Hub id (e.g. model='bert-base-uncased'); bert_hub picks no default model")
    device = _device(device)
    load = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
    name = None
    if isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        head = model_class_for(cls)
        model = head.from_pretrained(name, device=device, torch_dtype=torch_dtype, **load)
    elif device is not None or torch_dtype is not None:
        import torch
        dtype = getattr(torch, torch_dtype.replace("torch.", "")) if isinstance(torch_dtype, str) \
            else torch_dtype
        model = model.to(device=device, dtype=dtype)
    if tokenizer is None:
        if name is None:
            raise InvalidInputError("with a model object, pass its tokenizer too (tokenizer=NAME or "
                                    "a BertTokenizer)")
        tokenizer = name
    if isinstance(tokenizer, (str, os.PathLike)):
        from ..tokenization import BertTokenizer
        tokenizer = BertTokenizer.from_pretrained(os.fspath(tokenizer), use_fast=use_fast, **load)
    if cls.task == "sentence-embedding" and name is not None:
        from ..hub import resolve_model
        from .embeddings import sentence_transformers_settings
        folder = resolve_model(name, need_weights=False, **load).folder
        task_options = {**sentence_transformers_settings(folder), **task_options}
    return cls(model, tokenizer, batch_size=batch_size, progress=progress, **task_options)


def task_class(task: str):
    """The pipeline class of a task name or alias; an unknown name lists the tasks."""
    name = ALIASES.get(str(task).lower(), str(task).lower())
    if name not in TASKS:
        close = difflib.get_close_matches(str(task), list(TASKS) + list(ALIASES), n=1)
        raise UnknownTaskError(f"unknown pipeline task {task!r}; tasks: {', '.join(TASKS)} (and "
                               f"{', '.join(ALIASES)})" + (f". Did you mean {close[0]!r}?" if close else ""))
    module, cls = TASKS[name]
    return getattr(import_module(f".{module}", __name__), cls)


def model_class_for(cls):
    """The model class a task loads by name: its head, or the encoder alone for embeddings."""
    from ..modeling import BertModel
    return BertModel if cls.task in ("feature-extraction", "sentence-embedding") else cls.heads[0]


def _device(device):
    """transformers' integer devices (-1: cpu, n: cuda:n) as torch device strings."""
    if isinstance(device, bool):
        raise InvalidInputError(f"device must be 'cpu', 'cuda', 'cuda:N' or an int, got {device!r}")
    if isinstance(device, int):
        return "cpu" if device < 0 else f"cuda:{device}"
    return device


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(import_module(f".{_CLASSES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
