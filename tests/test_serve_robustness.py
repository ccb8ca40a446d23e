"""`bert-hub serve` under abuse: the scheduler's rules in-process (token budget, length-aware
batches, gone clients dropped, a failing batch failing only its requests, draining), then real
server processes on 127.0.0.1: a seeded campaign of malformed bodies, overload at twice the
capacity, a client that disconnects, SIGTERM under load, and a model that raises on one batch.
Every wait is bounded."""
import asyncio
import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serve_process import Server, start_all
from tiny_hf import write_model

from bert_hub.pipelines.base import Features
from bert_hub.serve.errors import BackendError
from bert_hub.serve.metrics import Metrics
from bert_hub.serve.scheduler import Job, Scheduler

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

CAMPAIGN_SEED = 19
CAMPAIGN_CASES = 1200
LONG_INPUT = "the simple question " * 30          # 92 tokens: one per batch of 128


def row(length: int, marker: int = 7) -> Features:
    return Features([marker] * length, [0] * length)


def run_jobs(sizes_per_job, budget, compute=None, cancel=()):
    """Queue every job before the scheduler starts; return (results or errors, batches seen)."""
    batches = []
    metrics = Metrics()

    def default(rows, batch):
        batches.append([len(r.input_ids) for r in rows])
        return [len(r.input_ids) for r in rows]

    async def main():
        loop = asyncio.get_running_loop()
        scheduler = Scheduler(lambda rows: None, compute or default, budget, metrics)
        jobs = [Job([row(n) for n in sizes], loop) for sizes in sizes_per_job]
        for job in jobs:
            scheduler.submit(job)
        for i in cancel:
            jobs[i].cancel()
        scheduler.start()
        outcomes = []
        for i, job in enumerate(jobs):
            if i in cancel:
                continue
            try:
                outcomes.append(await asyncio.wait_for(job.future, 30))
            except BackendError as exc:
                outcomes.append(exc)
        assert scheduler.stop(30)
        return outcomes

    return asyncio.run(main()), batches, metrics


# -- the scheduler ---------------------------------------------------------------------------------
def test_batches_fit_the_token_budget_oldest_first_closest_lengths_next():
    outcomes, batches, metrics = run_jobs([[100], [100], [20], [90], [30], [10]], budget=128)
    assert outcomes == [[100], [100], [20], [90], [30], [10]]
    assert all(sum(b) <= 128 for b in batches), batches
    # The oldest (100) first, with the closest lengths that fit (20 fits, 30 would not after it);
    # the second 100 does not block the short ones: they never wait behind a batch it fills.
    assert batches == [[100, 20], [100, 10], [90, 30]]
    assert metrics.registry.get_sample_value("bert_hub_serve_tokens_total") == 350


def test_inputs_of_a_gone_client_never_reach_the_model():
    outcomes, batches, metrics = run_jobs([[5, 6], [50, 51, 52], [7]], budget=512, cancel=(1,))
    assert outcomes == [[5, 6], [7]]
    assert sorted(x for b in batches for x in b) == [5, 6, 7]
    assert metrics.registry.get_sample_value("bert_hub_serve_dropped_inputs_total") == 3


def test_a_batch_that_raises_fails_only_the_requests_in_it():
    def compute(rows, batch):
        if any(len(r.input_ids) == 66 for r in rows):
            raise RuntimeError("boom")
        return [len(r.input_ids) for r in rows]

    outcomes, _, metrics = run_jobs([[100], [66, 10], [101], [90]], budget=128, compute=compute)
    assert outcomes[0] == [100] and outcomes[2] == [101] and outcomes[3] == [90]
    assert isinstance(outcomes[1], BackendError) and "boom" in str(outcomes[1])
    assert metrics.registry.get_sample_value("bert_hub_serve_failed_batches_total") >= 1


# -- real servers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "base"
    write_model(path, "BertModel")
    return path


@pytest.fixture(scope="module")
def apps(folder, tmp_path_factory):
    """A plain server, and servers around models that are slow or raise (``_serve_apps.py``)."""
    logs = tmp_path_factory.mktemp("robust_logs")
    servers = start_all({"plain": [str(folder), "--max-client-batch-size", "8",
                                   "--payload-limit", "200000"]}, logs)
    for name, args in {"slow": ["slow", str(folder), "--max-concurrent-requests", "4", "--delay", "0.25",
                                "--max-batch-tokens", "128"],
                       "raising": ["raising", str(folder), "--max-batch-tokens", "128"]}.items():
        servers[name] = Server(args, logs / f"{name}.log", script=True)
    for server in servers.values():
        server.wait_ready()
    yield servers
    for server in servers.values():
        if server.process.poll() is None:
            assert server.stop() == 0, server.output()


def malformed_bodies(seed: int, count: int):
    """``(route, content_type, body bytes)``: every one of them wrong in some way."""
    rng = random.Random(seed)
    routes = ["/embed", "/predict", "/rerank", "/similarity", "/tokenize", "/decode", "/v1/embeddings",
              "/embeddings", "/"]
    junk = [None, True, 3, -1, 0, 1.5, 1e308, [], {}, [1, "a"], [[]], {"a": 1}, [None], "", " ",
            [""], ["a"] * 40, [[1, 2], "b"], [-5], [[10 ** 9]], {"source_sentence": 1}]

    def wrong_field():
        field = rng.choice(["inputs", "input", "normalize", "truncate", "dimensions", "raw_scores",
                            "truncation_direction", "encoding_format", "ids", "query", "texts",
                            "parameters", "add_special_tokens", "bogus_field"])
        body = {"inputs": "a fine film"} if rng.random() < 0.5 else {}
        body[field] = rng.choice(junk + ["yes", "Up", "base32", float("nan")])
        return json.dumps(body).encode()

    makers = [
        wrong_field,
        lambda: json.dumps({"inputs": ["x"] * rng.randint(9, 3000)}).encode(),             # too many
        lambda: json.dumps({"input": ["y"] * rng.randint(33, 500)}).encode(),
        lambda: json.dumps({"inputs": "z" * rng.randint(200_001, 400_000)}).encode(),     # over the limit
        lambda: b'{"inputs": "' + bytes(rng.randint(128, 255) for _ in range(rng.randint(1, 40))) + b'"}',
        lambda: b'{"inputs": "a", "dimensions": NaN}',
        lambda: b'{"inputs": NaN}',
        lambda: b'{"inputs": Infinity, "normalize": -Infinity}',
        lambda: (b"[" * (depth := rng.randint(10, 90_000))) + (b"]" * depth),                   # deep nesting
        lambda: (b'{"inputs":' * (depth := rng.randint(10, 20_000))) + b'"a"' + b"}" * depth,
        lambda: bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 300))),                   # noise
        lambda: json.dumps({"inputs": "a"})[: rng.randint(1, 12)].encode(),                      # cut short
        lambda: json.dumps(rng.choice([[], "text", 42, None, [{"inputs": "a"}]])).encode(),
        lambda: json.dumps({"inputs": "\ud800 lone surrogate"}).encode(),
        lambda: json.dumps({"inputs": [[rng.randint(-10, -1)]]}).encode(),
        lambda: json.dumps({"ids": [rng.randint(10_000, 10 ** 12)]}).encode(),
        lambda: json.dumps({"inputs": {"source_sentence": "a", "sentences": []}}).encode(),
        lambda: json.dumps({"query": "q", "texts": []}).encode(),
        lambda: b"",
    ]
    kinds = ["application/json"] * 8 + ["text/plain", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x", "application/xml"]
    for _ in range(count):
        yield rng.choice(routes), rng.choice(kinds), rng.choice(makers)()


def test_hostile_campaign_gets_only_4xx_json_and_the_server_stays_correct(apps):
    server = apps["plain"]
    texts = ["a fine film", "john lives in paris"]
    before = server.post("/embed", {"inputs": texts}).json()
    statuses = {}
    with requests.Session() as session:
        for route, kind, payload in malformed_bodies(CAMPAIGN_SEED, CAMPAIGN_CASES):
            response = session.post(server.url + route, data=payload, headers={"Content-Type": kind},
                                    timeout=30)
            assert 400 <= response.status_code < 500, (route, kind, payload[:200], response.status_code,
                                                       response.text[:300])
            answer = response.json()
            assert set(answer) == {"error", "error_type"} and answer["error"], (route, payload[:200], answer)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert session.get(server.url + "/embed", timeout=10).status_code == 405
    assert {400, 413, 415, 422} <= set(statuses), statuses
    assert server.get("/health").status_code == 200
    assert server.post("/embed", {"inputs": texts}).json() == before


def test_overload_at_twice_the_capacity_answers_200_or_429_and_nothing_hangs(apps):
    server = apps["slow"]                          # 4 requests in flight, 0.25 s a forward
    deadline = time.monotonic() + 4.0

    def client(_):
        seen = []
        with requests.Session() as session:
            while time.monotonic() < deadline:
                got = session.post(server.url + "/embed", json={"inputs": ["a fine film", "good"]}, timeout=30)
                seen.append(got.status_code)
                if got.status_code == 429:
                    assert got.headers["Retry-After"] == "1"
                    assert got.json()["error_type"] == "overloaded"
                    time.sleep(0.05)
        return seen

    with ThreadPoolExecutor(8) as pool:
        seen = [s for statuses in pool.map(client, range(8), timeout=60) for s in statuses]
    assert set(seen) <= {200, 429}, sorted(set(seen))
    assert seen.count(200) >= 4 and seen.count(429) >= 1, (seen.count(200), seen.count(429))
    assert server.get("/health").status_code == 200


def _metric(server, name: str) -> float:
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_client_that_disconnects_costs_no_more_compute(apps):
    server = apps["slow"]                            # one 92-token input per 0.25 s forward
    batches_before = _metric(server, "bert_hub_serve_batches_total")
    dropped_before = _metric(server, "bert_hub_serve_dropped_inputs_total")
    body = json.dumps({"inputs": [LONG_INPUT] * 8}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.4)                                # one or two forwards, then the client is gone
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _metric(server, "bert_hub_serve_dropped_inputs_total") == dropped_before:
        time.sleep(0.1)
    time.sleep(0.6)                                    # a forward in flight ends
    computed = _metric(server, "bert_hub_serve_batches_total") - batches_before
    dropped = _metric(server, "bert_hub_serve_dropped_inputs_total") - dropped_before
    assert dropped >= 4 and computed <= 4 and computed + dropped == 8, (computed, dropped)
    assert server.post("/embed", {"inputs": ["still serving"]}).status_code == 200


def test_a_model_that_raises_fails_only_the_request_in_its_batch(apps):
    server = apps["raising"]                         # one 92-token input per batch of 128
    texts = [LONG_INPUT, LONG_INPUT.replace("question", "puppet", 1), LONG_INPUT, LONG_INPUT]

    def send(text):
        return server.post("/embed", {"inputs": [text]}, timeout=60)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, texts, timeout=90))
    assert [a.status_code for a in answers] == [200, 500, 200, 200]
    assert answers[1].json()["error_type"] == "backend" and "puppet" in answers[1].json()["error"]
    assert answers[0].json() == answers[2].json()
    assert server.get("/health").status_code == 200
    assert send("a fine film").status_code == 200


def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(apps):
    server = apps["slow"]                            # 4 in flight at most, 0.25 s a forward
    results = []

    def send(_):
        results.append(server.post("/embed", {"inputs": [LONG_INPUT] * 3}, timeout=60))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while _metric(server, "bert_hub_serve_requests_in_flight") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _metric(server, "bert_hub_serve_requests_in_flight") == 4      # all accepted, queued
    started = time.monotonic()
    server.terminate()
    for thread in threads:
        thread.join(60)
    assert server.wait(30) == 0, server.output()
    assert time.monotonic() - started < 30
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert all(len(r.json()) == 3 for r in results)
    with pytest.raises(requests.ConnectionError):
        server.get("/health", timeout=5)


def test_a_chunked_body_over_the_limit_is_refused_on_the_bytes_received(apps):
    server = apps["plain"]                         # --payload-limit 200000

    def chunks():
        yield b'{"inputs": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    got = requests.post(server.url + "/embed", data=chunks(), timeout=30,
                        headers={"Content-Type": "application/json"})   # no Content-Length: chunked
    assert got.status_code == 413 and got.json()["error_type"] == "payload_too_large"
    assert server.post("/embed", {"inputs": "fine"}).status_code == 200


def test_loading_and_draining_answer_503(folder):
    from fastapi.testclient import TestClient

    from bert_hub.serve import create_app
    app = create_app(str(folder), warmup=False)
    state = app.state.bert_hub
    with TestClient(app) as client:
        assert state.wait_ready(60)
        assert client.post("/embed", json={"inputs": "a"}).status_code == 200
        state.drain()
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "draining"
        refused = client.post("/embed", json={"inputs": "a"})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_bfloat16_and_int8_serve_close_to_float32(folder, dtype):
    import torch
    from fastapi.testclient import TestClient

    from bert_hub.serve import create_app
    texts = ["a fine film", "john lives in paris", "the simple question of a good film"]
    vectors = {}
    for kind in ("float32", dtype):
        app = create_app(str(folder), dtype=kind)
        with TestClient(app) as client:
            assert app.state.bert_hub.wait_ready(60), app.state.bert_hub.problem
            assert client.get("/info").json()["model_dtype"] == kind
            got = client.post("/embed", json={"inputs": texts})
            assert got.status_code == 200, got.text
            vectors[kind] = torch.tensor(got.json())
    cosine = (vectors["float32"] * vectors[dtype]).sum(-1)          # unit vectors
    assert vectors[dtype].shape == (3, 32) and float(cosine.min()) > 0.98, cosine
