"""The plain baseline for scripts/bench/serve.py: what people write first — sentence-transformers
(embeddings) or a transformers classifier behind a FastAPI route, one request at a time, no
batching across requests.

    BENCH_MODEL=DIR BENCH_TASK=embed|classify uvicorn serve_baseline:app --port P
"""
import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
MODEL, TASK = os.environ["BENCH_MODEL"], os.environ.get("BENCH_TASK", "embed")

if TASK == "embed":
    from sentence_transformers import SentenceTransformer
    encoder = SentenceTransformer(MODEL, device="cpu")
else:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    classifier = AutoModelForSequenceClassification.from_pretrained(MODEL).eval()


class Inputs(BaseModel):
    input: list


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/embeddings")
def embeddings(body: Inputs):
    vectors = encoder.encode(body.input, convert_to_numpy=True)
    return {"data": [{"embedding": v.tolist(), "index": i} for i, v in enumerate(vectors)]}


@app.post("/classify")
def classify(body: Inputs):
    batch = tokenizer(body.input, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        scores = torch.softmax(classifier(**batch).logits, dim=-1)
    return [[{"label": classifier.config.id2label[j], "score": float(s)} for j, s in enumerate(row)]
            for row in scores]
