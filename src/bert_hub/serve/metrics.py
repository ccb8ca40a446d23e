"""The server's Prometheus metrics, in a registry of its own (several apps in one process never
share counters). Inputs and tokens are counted as the model pays for them: real tokens, not
padded positions and not characters."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKENS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    """Counters, gauges and histograms under the ``bert_hub_serve_`` prefix."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r, p = self.registry, "bert_hub_serve_"
        self.requests = Counter(p + "requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.request_seconds = Histogram(p + "request_duration_seconds", "time to answer a request",
                                         ["route"], buckets=_LATENCY, registry=r)
        self.inputs = Counter(p + "inputs", "inputs computed (texts, pairs, windows)", registry=r)
        self.tokens = Counter(p + "tokens", "real tokens computed", registry=r)
        self.batches = Counter(p + "batches", "forward passes run", registry=r)
        self.failed_batches = Counter(p + "failed_batches", "forward passes that raised", registry=r)
        self.dropped_inputs = Counter(p + "dropped_inputs",
                                      "queued inputs dropped because their client had gone", registry=r)
        self.rejected = Counter(p + "rejected_requests", "requests refused with 429 (overloaded)",
                                registry=r)
        self.batch_inputs = Histogram(p + "batch_inputs", "inputs per forward", buckets=_SIZES,
                                      registry=r)
        self.batch_tokens = Histogram(p + "batch_tokens", "real tokens per forward", buckets=_TOKENS,
                                      registry=r)
        self.queue_seconds = Histogram(p + "queue_seconds", "time an input waited for its batch",
                                       buckets=_LATENCY, registry=r)
        self.forward_seconds = Histogram(p + "forward_seconds", "time of one forward pass",
                                         buckets=_LATENCY, registry=r)
        self.queue_inputs = Gauge(p + "queue_inputs", "inputs waiting for a batch", registry=r)
        self.in_flight = Gauge(p + "requests_in_flight", "requests being answered", registry=r)
        self.ready = Gauge(p + "ready", "1 when the model is loaded and warm, else 0", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
