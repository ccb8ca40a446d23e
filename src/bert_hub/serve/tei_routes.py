"""text-embeddings-inference's routes, with its field names and answers: /embed, /predict,
/rerank, /similarity, /tokenize, /decode, /info, /health, /metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import InvalidInputError
from . import operations
from .errors import body as error_body
from .schemas import (DecodeRequest, EmbedRequest, PredictRequest, RerankRequest, SimilarityRequest,
                      TokenizeRequest)
from .state import READY, ServerState, json_response

router = APIRouter(tags=["text-embeddings-inference"])


def _state(request: Request) -> ServerState:
    return request.app.state.bert_hub


@router.post("/embed", summary="Embeddings of texts (or token ids): [[float]]")
async def embed(body: EmbedRequest, request: Request):
    vectors, _ = await operations.embed(_state(request), request.receive, body.inputs, body.truncate,
                                        body.truncation_direction, body.normalize, body.dimensions,
                                        body.prompt_name)
    return json_response(vectors.tolist())


@router.post("/predict", summary="Labels of a text, a pair, or a list of them, best first")
async def predict(body: PredictRequest, request: Request):
    items, single = _sequences(body.inputs)
    labels = await operations.predict(_state(request), request.receive, items, body.truncate,
                                      body.truncation_direction, body.raw_scores)
    return json_response(labels[0] if single else labels)


def _sequences(inputs):
    """TEI's forms: "a" (one text), ["a", "b"] (one pair), ["a", "b", "c"] (three texts),
    [["a"], ["a", "b"]] (a text and a pair)."""
    if isinstance(inputs, str):
        return [(inputs, None)], True
    if len(inputs) == 2 and all(isinstance(i, str) for i in inputs):
        return [(inputs[0], inputs[1])], True
    items = []
    for number, item in enumerate(inputs):
        if isinstance(item, str):
            items.append((item, None))
        elif len(item) in (1, 2):
            items.append((item[0], item[1] if len(item) == 2 else None))
        else:
            raise InvalidInputError(f"inputs[{number}] has {len(item)} texts; a sequence is [text] or "
                                    "[text, text_pair]")
    return items, False


@router.post("/rerank", summary="Texts ranked by relevance to a query (a cross-encoder)")
async def rerank(body: RerankRequest, request: Request):
    scores = await operations.rerank(_state(request), request.receive, body.query, body.texts,
                                     body.truncate, body.truncation_direction, body.raw_scores)
    ranked = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    return json_response([{"index": i, "score": scores[i], **({"text": body.texts[i]} if body.return_text
                                                              else {})} for i in ranked])


@router.post("/similarity", summary="Cosine similarity of a sentence with others")
async def similarity(body: SimilarityRequest, request: Request):
    params = body.parameters
    scores = await operations.similarity(
        _state(request), request.receive, body.inputs.source_sentence, body.inputs.sentences,
        params.truncate if params else None, params.truncation_direction if params else "right",
        params.prompt_name if params else None)
    return json_response(scores)


@router.post("/tokenize", summary="Tokens of texts with their character spans")
async def tokenize(body: TokenizeRequest, request: Request):
    state = _state(request)
    engine = state.require_ready()
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    operations.check_texts(state, texts)
    if body.prompt_name is not None:
        raise InvalidInputError("prompt_name is not supported: this server has no prompts")
    tokens = await run_in_threadpool(lambda: [engine.tokens(t, body.add_special_tokens) for t in texts])
    return json_response(tokens)


@router.post("/decode", summary="Text of token ids")
async def decode(body: DecodeRequest, request: Request):
    state = _state(request)
    engine = state.require_ready()
    single = not body.ids or isinstance(body.ids[0], int)
    sequences = [body.ids] if single else body.ids
    operations.check_texts(state, sequences, "ids")
    texts = [engine.decode(ids, body.skip_special_tokens) for ids in sequences]
    return json_response(texts[0] if single else texts)


@router.get("/info", summary="The model, its task and the server's limits")
async def info(request: Request):
    engine = _state(request).require_ready()
    return json_response({**engine.info(), "version": __version__, "backend": "bert_hub"})


@router.get("/health", summary="200 when ready; 503 while loading, draining or failed")
async def health(request: Request):
    state = _state(request)
    if state.status == READY:
        return json_response({"status": READY})
    message = state.problem if state.problem else f"the server is {state.status}"
    return json_response({**error_body(message, "unhealthy"), "status": state.status}, status=503)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request):
    state = _state(request)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
