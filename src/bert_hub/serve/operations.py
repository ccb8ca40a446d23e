"""What each kind of request computes, whatever protocol asked: inputs checked against the
limits, tokenized off the event loop, run through the scheduler, and put together by the
engine. The route modules only translate their protocol's fields to these calls and back."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidInputError
from .errors import BadRequestError
from .state import ServerState

ROUTE_OF_TASK = {"embed": "POST /embed", "classify": "POST /predict", "rerank": "POST /rerank",
                 "token-classify": "POST /", "fill-mask": "POST /", "qa": "POST /"}


def engine_for(state: ServerState, tasks: Sequence[str], route: str):
    """The engine, if it serves one of ``tasks``; else a 400 saying what this server does serve."""
    engine = state.require_ready()
    if engine.task not in tasks:
        raise BadRequestError(
            f"{route} needs a model served as {' or '.join(tasks)}; this server serves "
            f"{engine.model_id!r} as {engine.task} (use {ROUTE_OF_TASK[engine.task]}, or start "
            f"another server with --task {tasks[0]})")
    return engine


def check_texts(state: ServerState, texts: Sequence, what: str = "inputs") -> None:
    """Not empty, no empty text, not more than --max-client-batch-size."""
    if len(texts) == 0:
        raise InvalidInputError(f"{what} is empty: send at least one input")
    limit = state.settings.max_client_batch_size
    if len(texts) > limit:
        raise InvalidInputError(f"{what} holds {len(texts)} inputs, more than this server takes in one "
                                f"request ({limit}, --max-client-batch-size): split the request")
    for number, text in enumerate(texts):
        if not isinstance(text, str):
            if len(text) == 0:
                raise InvalidInputError(f"{what}[{number}] is empty: every input needs some tokens")
            continue
        if not text.strip():
            raise InvalidInputError(f"{what}[{number}] is empty: every input needs some text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(f"{what}[{number}] is not valid Unicode ({exc.reason} at "
                                    f"character {exc.start}): send UTF-8 text") from None


def _no_prompt(prompt_name: Optional[str]) -> None:
    if prompt_name is not None:
        raise InvalidInputError(f"prompt_name ({prompt_name!r}) is not supported: this server has no "
                                "prompts; put the prompt in the text")


def split_inputs(inputs) -> Tuple[list, bool]:
    """``(items, is_ids)``: a text, texts, token ids or lists of token ids, as a list."""
    if isinstance(inputs, str):
        return [inputs], False
    if inputs and all(isinstance(i, int) for i in inputs):
        return [inputs], True
    return list(inputs), bool(inputs) and not isinstance(inputs[0], str)


async def embed(state: ServerState, receive, inputs, truncate: Optional[bool], direction: str,
                normalize: bool, dimensions: Optional[int],
                prompt_name: Optional[str] = None) -> Tuple[torch.Tensor, int]:
    """(N, D) embeddings and the real tokens they cost."""
    engine = engine_for(state, ("embed",), "embeddings")
    _no_prompt(prompt_name)
    items, is_ids = split_inputs(inputs)
    check_texts(state, items)
    if is_ids:
        rows = engine.encode_ids(items)
    else:
        rows = await run_in_threadpool(engine.encode, items, None, truncate, direction)
    pooled = await state.compute(receive, rows)
    return engine.vectors(pooled, normalize, dimensions), sum(len(r.input_ids) for r in rows)


async def similarity(state: ServerState, receive, source: str, sentences: List[str],
                     truncate: Optional[bool] = None, direction: str = "right",
                     prompt_name: Optional[str] = None) -> List[float]:
    """Cosine similarity of ``source`` with each of ``sentences``."""
    check_texts(state, [source] + list(sentences[:1]), "inputs")
    check_texts(state, sentences, "inputs.sentences")
    vectors, _ = await embed(state, receive, [source] + list(sentences), truncate, direction,
                             True, None, prompt_name)
    return (vectors[1:] @ vectors[0]).tolist()


async def predict(state: ServerState, receive, items: List[Tuple[str, Optional[str]]],
                  truncate: Optional[bool], direction: str, raw_scores: bool = False,
                  top_k: Optional[int] = None, function: Optional[str] = None) -> List[List[dict]]:
    """Per text (or pair): its labels, best first."""
    engine = engine_for(state, ("classify", "rerank"), "POST /predict")
    check_texts(state, [text for text, _ in items])
    check_texts(state, [pair for _, pair in items if pair is not None] or ["-"], "text pairs")
    if top_k is not None and top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k}")
    rows = await run_in_threadpool(engine.encode, [t for t, _ in items], [p for _, p in items],
                                   truncate, direction)
    logits = await state.compute(receive, rows)
    return [engine.labels(row, raw_scores, top_k, function) for row in logits]


async def rerank(state: ServerState, receive, query: str, texts: List[str], truncate: Optional[bool],
                 direction: str, raw_scores: bool) -> List[float]:
    """Relevance of each text to the query (a cross-encoder's score), in the texts' order."""
    engine = engine_for(state, ("rerank",), "POST /rerank")
    check_texts(state, [query], "query")
    check_texts(state, texts, "texts")
    rows = await run_in_threadpool(engine.encode, [query] * len(texts), texts, truncate, direction)
    logits = await state.compute(receive, rows)
    return [engine.relevance(row, raw_scores) for row in logits]


async def entities(state: ServerState, receive, texts: List[str], truncate: Optional[bool],
                   strategy: str, ignore_labels: Optional[List[str]]) -> List[List[dict]]:
    engine = engine_for(state, ("token-classify",), "token classification")
    check_texts(state, texts)
    truncate = state.settings.auto_truncate if truncate is None else truncate
    pipe = engine.pipe
    rows = await run_in_threadpool(lambda: [pipe.encode(t, truncation=truncate) for t in texts])
    scores = await state.compute(receive, rows)
    ignored = ["O"] if ignore_labels is None else ignore_labels
    return await run_in_threadpool(lambda: [pipe.entities(t, r, s, strategy, ignored)
                                            for t, r, s in zip(texts, rows, scores)])


async def fill_mask(state: ServerState, receive, texts: List[str], top_k: int, targets) -> list:
    engine = engine_for(state, ("fill-mask",), "fill-mask")
    check_texts(state, texts)
    pipe = engine.pipe
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")
    target_ids = pipe.target_ids(targets) if targets is not None else None
    rows = await run_in_threadpool(lambda: [pipe.encode(t) for t in texts])
    probs = await state.compute(receive, rows)
    return await run_in_threadpool(lambda: [pipe.answers(r, p, top_k, target_ids)
                                            for r, p in zip(rows, probs)])


async def answer(state: ServerState, receive, examples: List[Tuple[str, str]], options: dict) -> list:
    engine = engine_for(state, ("qa",), "question answering")
    check_texts(state, [q for q, _ in examples], "questions")
    check_texts(state, [c for _, c in examples], "contexts")
    pipe = engine.pipe
    options = pipe.options(**options)
    windows = await run_in_threadpool(pipe.windows, examples, options)
    logits = await state.compute(receive, windows)
    return await run_in_threadpool(pipe.answers, examples, windows, logits, options)
