"""The Hugging Face inference convention: ``POST /`` with ``{"inputs": ..., "parameters":
{...}}`` answers for the served task, so ``huggingface_hub.InferenceClient(model=URL)`` works
for feature_extraction and sentence_similarity (embed), text_classification (classify, rerank),
token_classification, fill_mask and question_answering, with the answers' layouts it parses."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ..errors import InvalidInputError
from . import operations
from .schemas import (FeatureExtractionParameters, FillMaskParameters, InferenceRequest,
                      QuestionAnsweringInput, QuestionAnsweringParameters, SimilarityInputs,
                      TextClassificationParameters, TextPair, TokenClassificationParameters)
from .state import json_response

router = APIRouter(tags=["Hugging Face inference"])
_TOP_LEVEL = ("normalize", "truncate", "truncation_direction", "dimensions", "prompt_name",
              "encoding_format")


@router.post("/", summary="The served task, as the Hugging Face inference API answers it")
async def infer(body: InferenceRequest, request: Request):
    state = request.app.state.bert_hub
    engine = state.require_ready()
    top_level = {k: getattr(body, k) for k in _TOP_LEVEL if getattr(body, k) is not None}
    if engine.task != "embed" and top_level:
        raise InvalidInputError(f"{sorted(top_level)} apply to feature-extraction only; this server "
                                f"serves {engine.task}: put options under \"parameters\"")
    handler = _HANDLERS[engine.task]
    return json_response(await handler(state, request.receive, body, top_level))


def _texts(inputs, what="a text or a list of texts"):
    if isinstance(inputs, str):
        return [inputs], True
    if isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
        return inputs, False
    raise InvalidInputError(f"inputs must be {what} for this task, got {type(inputs).__name__}")


async def _embed(state, receive, body, options):
    params = {**(body.parameters or {}), **options}
    if isinstance(body.inputs, dict):          # sentence-similarity
        pair = SimilarityInputs.model_validate(body.inputs)
        params = FeatureExtractionParameters.model_validate(params)
        return await operations.similarity(state, receive, pair.source_sentence, pair.sentences,
                                           params.truncate, params.truncation_direction, params.prompt_name)
    params.pop("encoding_format", None)
    params = FeatureExtractionParameters.model_validate(params)
    texts, _ = _texts(body.inputs)
    normalize = state.engine.pipe.normalize if params.normalize is None else params.normalize
    vectors, _ = await operations.embed(state, receive, texts, params.truncate, params.truncation_direction,
                                        normalize, params.dimensions, params.prompt_name)
    return vectors.tolist()


async def _classify(state, receive, body, _options):
    params = TextClassificationParameters.model_validate(body.parameters or {})
    inputs = body.inputs
    items = inputs if isinstance(inputs, list) else [inputs]
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, None))
        else:
            pair = TextPair.model_validate(item)
            pairs.append((pair.text, pair.text_pair))
    return await operations.predict(state, receive, pairs, None, "right", top_k=params.top_k,
                                    function=params.function_to_apply)


async def _entities(state, receive, body, _options):
    params = TokenClassificationParameters.model_validate(body.parameters or {})
    texts, single = _texts(body.inputs)
    found = await operations.entities(state, receive, texts, None, params.aggregation_strategy,
                                      params.ignore_labels)
    return found[0] if single else found


async def _fill_mask(state, receive, body, _options):
    params = FillMaskParameters.model_validate(body.parameters or {})
    texts, single = _texts(body.inputs, "a text with [MASK] or a list of them")
    answers = await operations.fill_mask(state, receive, texts, params.top_k, params.targets)
    return answers[0] if single else answers


async def _answer(state, receive, body, _options):
    params = QuestionAnsweringParameters.model_validate(body.parameters or {})
    single = not isinstance(body.inputs, list)
    items = [body.inputs] if single else body.inputs
    examples = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInputError('inputs must be {"question": ..., "context": ...} or a list of them')
        example = QuestionAnsweringInput.model_validate(item)
        examples.append((example.question, example.context))
    options = params.model_dump(exclude={"max_question_len"})
    answers = await operations.answer(state, receive, examples, options)
    return answers[0] if single else answers


_HANDLERS = {"embed": _embed, "classify": _classify, "rerank": _classify,
             "token-classify": _entities, "fill-mask": _fill_mask, "qa": _answer}
