"""OpenAI's embeddings API: ``POST /v1/embeddings`` (and ``/embeddings``), so the ``openai``
client works with ``base_url`` pointing here. Its client asks for base64 unless told
otherwise: little-endian float32, as it decodes them. ``usage`` counts real tokens (those
the model computed, [CLS] and [SEP] included), never characters."""
from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request

from . import operations
from .schemas import EmbeddingsRequest
from .state import json_response

router = APIRouter(tags=["OpenAI"])


@router.post("/v1/embeddings", summary="OpenAI embeddings (float or base64)")
@router.post("/embeddings", include_in_schema=False)
async def embeddings(body: EmbeddingsRequest, request: Request):
    state = request.app.state.bert_hub
    vectors, tokens = await operations.embed(state, request.receive, body.input, None, "right",
                                             True, body.dimensions)
    if body.encoding_format == "base64":
        data = [base64.b64encode(np.ascontiguousarray(v.numpy(), dtype="<f4").tobytes()).decode("ascii")
                for v in vectors]
    else:
        data = vectors.tolist()
    name = state.settings.served_model_name or state.engine.model_id
    return json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
