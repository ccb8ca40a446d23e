"""What one app holds while it runs: its settings, the engine (loaded on a thread, so /health
can say 503 while loading), the scheduler, the metrics, and whether it is loading, ready,
draining or failed. ``compute`` is how a route hands rows to the scheduler and waits for
them, dropping them if the client disconnects."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any, List, Optional

from .engine import Engine
from .errors import UnavailableError
from .metrics import Metrics
from .scheduler import Job, Scheduler
from .settings import ServeSettings

logger = logging.getLogger(__name__)

LOADING, READY, DRAINING, FAILED = "loading", "ready", "draining", "failed"
# oneDNN keeps compiled kernels per input shape (torch's ideep cache: LRU_CACHE_CAPACITY, and
# oneDNN's own: ONEDNN_PRIMITIVE_CACHE_CAPACITY), 1024 each by default. Every batch the
# scheduler forms has its own token count, each count cached costs 1-2 MB (all-MiniLM-L6-v2),
# so a long-running server would grow by gigabytes; 64 entries plateau within a minute at
# saturation (docs/serve.md). A value the user set is kept.
KERNEL_CACHE_ENTRIES = {"LRU_CACHE_CAPACITY": "64", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "64"}


class ServerState:
    def __init__(self, settings: ServeSettings, pipeline=None):
        self.settings = settings
        self.metrics = Metrics()
        self.status = LOADING
        self.problem: Optional[str] = None
        self.engine: Optional[Engine] = None
        self.scheduler: Optional[Scheduler] = None
        self.in_flight = 0                      # requests being answered (the event loop's count)
        self._pipeline = pipeline
        self._loader: Optional[threading.Thread] = None
        self.on_failed = None                   # called (from the loading thread) if loading fails

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load (on a thread) and start the scheduler; idempotent."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="bert-hub-loader", daemon=True)
            self._loader.start()

    def _load(self) -> None:
        for name, value in KERNEL_CACHE_ENTRIES.items():     # read at the first forward
            os.environ.setdefault(name, value)
        try:
            if self.settings.threads is not None:
                import torch
                torch.set_num_threads(self.settings.threads)
            engine = (Engine.load(self.settings) if self._pipeline is None else
                      Engine.from_pipeline(self._pipeline, self.settings,
                                           self.settings.served_model_name or "pipeline"))
            if self.settings.warmup:
                engine.warm_up()
            scheduler = Scheduler(engine.pad, engine.compute, engine.max_batch_tokens, self.metrics)
            scheduler.start()
        except Exception as exc:   # noqa: BLE001 - reported by /health and every route
            logger.error("the model failed to load", exc_info=exc)
            self.problem = f"the model failed to load: {type(exc).__name__}: {exc}"
            self.status = FAILED
            if self.on_failed is not None:
                self.on_failed()
            return
        self.engine, self.scheduler = engine, scheduler
        if self.status == LOADING:
            self.status = READY
            self.metrics.ready.set(1)
        logger.info("ready: %s as %s", engine.model_id, engine.task)

    def drain(self) -> None:
        """Stop accepting (503), keep computing what was accepted."""
        if self.status != FAILED:
            self.status = DRAINING
        self.metrics.ready.set(0)

    def stop(self, timeout: float) -> None:
        self.drain()
        if self.scheduler is not None and not self.scheduler.stop(timeout):
            logger.warning("inputs were still being computed %.0f s after shutdown began", timeout)

    def wait_ready(self, timeout: float) -> bool:
        if self._loader is not None:
            self._loader.join(timeout)
        return self.status == READY

    # -- requests ----------------------------------------------------------------------------------
    def require_ready(self) -> Engine:
        """The engine; while draining too, for requests accepted before (the guard refuses new ones)."""
        if self.status in (READY, DRAINING) and self.engine is not None:
            return self.engine
        raise UnavailableError({LOADING: "the model is still loading; retry when GET /health answers 200",
                                DRAINING: "the server is shutting down; send the request to another replica",
                                }.get(self.status, self.problem or "the model is not available"),
                               retry_after=1)

    async def compute(self, receive, rows: List[Any]) -> list:
        """The scheduler's results for ``rows``; if the client disconnects first, its inputs are
        dropped from the queue and ``ClientGone`` is raised."""
        self.require_ready()
        job = Job(rows, asyncio.get_running_loop())
        self.scheduler.submit(job)
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({job.future, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not job.future.done():
                raise ClientGone()
            return job.future.result()
        finally:
            job.cancel()
            gone.cancel()


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def _disconnected(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def json_response(content, status: int = 200, headers=None):
    """JSON with NaN and infinity refused (they are not JSON): a model that produced them fails
    loudly rather than sending a body clients cannot parse."""
    from starlette.responses import JSONResponse
    return JSONResponse(content, status_code=status, headers=headers)
