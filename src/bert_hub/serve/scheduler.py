"""One scheduler between the requests and the model.

Requests are split into inputs (rows of token ids, tokenized off the event loop), queued, and
formed into batches by a **token budget counted in real tokens**: the unpadded forward costs
what its real tokens cost, so the budget bounds time and memory whatever the lengths. Batches
are length-aware (the oldest input first, then the inputs closest to its length while the
budget lasts), so one input never waits behind a batch that cannot fit it and nothing starves.

Two threads: the *batcher* forms and pads the next batch while the *model* thread runs the
current one. Inputs whose client has gone (or whose request already failed) are dropped when a
batch is formed, before they cost compute. A batch that raises fails only the requests that
had inputs in it. ``stop`` drains: everything accepted is computed before the threads end.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import InvalidInputError
from .errors import BackendError, UnavailableError

logger = logging.getLogger(__name__)


class Job:
    """One request's rows on their way through the scheduler; ``future`` (on the request's event
    loop) gets the results in row order, or the error of a batch that failed."""

    def __init__(self, rows: Sequence[Any], loop: asyncio.AbstractEventLoop):
        self.rows = list(rows)
        self.tokens = sum(len(r.input_ids) for r in self.rows)   # real tokens, for `usage`
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self._results: List[Any] = [None] * len(self.rows)
        self._left = len(self.rows)
        self.gone = False          # client disconnected or request failed: drop what is queued

    def cancel(self) -> None:
        self.gone = True

    def _deliver(self, index: int, value: Any) -> None:       # model thread only
        self._results[index] = value
        self._left -= 1
        if self._left == 0:
            self._settle(None)

    def _fail(self, exc: BaseException) -> None:              # model thread only
        if not self.gone:
            self.gone = True
            self._settle(exc)

    def _settle(self, exc: Optional[BaseException]) -> None:
        def settle():
            if self.future.done():
                return
            if exc is None:
                self.future.set_result(self._results)
            else:
                self.future.set_exception(exc)
        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:       # the loop is closed: nobody waits any more
            pass


@dataclass
class _Input:
    job: Job
    index: int
    cost: int          # real tokens
    seq: int           # arrival order
    enqueued: float


class Scheduler:
    """``submit(job)`` from the event loop; ``pad(rows)`` makes a batch's tensors (batcher
    thread), ``compute(rows, batch)`` runs it and returns one result per row (model thread)."""

    def __init__(self, pad: Callable[[List[Any]], Dict], compute: Callable[[List[Any], Dict], List[Any]],
                 max_batch_tokens: int, metrics=None):
        self.max_batch_tokens = max_batch_tokens
        self._pad, self._compute, self._metrics = pad, compute, metrics
        self._cond = threading.Condition()
        self._queue: List[_Input] = []            # arrival order
        self._next: Optional[tuple] = None        # (inputs, rows, batch) formed, not yet running
        self._closing = False
        self._batcher_done = False
        self._seq = itertools.count()
        self._threads: List[threading.Thread] = []

    # -- the event loop's side -------------------------------------------------------------------
    def start(self) -> None:
        self._threads = [threading.Thread(target=self._batcher, name="bert-hub-batcher", daemon=True),
                         threading.Thread(target=self._runner, name="bert-hub-model", daemon=True)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        too_long = [len(r.input_ids) for r in job.rows if len(r.input_ids) > self.max_batch_tokens]
        if too_long:
            raise InvalidInputError(f"an input has {too_long[0]} tokens, more than max_batch_tokens "
                                    f"({self.max_batch_tokens})")
        now = time.perf_counter()
        with self._cond:
            if self._closing:
                raise UnavailableError("the server is shutting down; send the request to another replica")
            self._queue += [_Input(job, i, len(r.input_ids), next(self._seq), now)
                            for i, r in enumerate(job.rows)]
            self._gauge()
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def stop(self, timeout: float) -> bool:
        """Compute everything accepted, then end the threads; False if that took over ``timeout``."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # -- the batcher thread ------------------------------------------------------------------------
    def _batcher(self) -> None:
        while True:
            with self._cond:
                while True:
                    self._drop_gone()
                    if self._queue and self._next is None:
                        break
                    if self._closing and not self._queue:
                        self._batcher_done = True
                        self._cond.notify_all()
                        return
                    self._cond.wait()
                chosen = self._choose()
                self._gauge()
            rows = [i.job.rows[i.index] for i in chosen]
            try:
                batch = self._pad(rows)
            except Exception as exc:     # noqa: BLE001 - fails these requests, not the server
                self._fail(chosen, exc)
                continue
            with self._cond:
                self._next = (chosen, rows, batch)
                self._cond.notify_all()

    def _drop_gone(self) -> None:
        gone = [i for i in self._queue if i.job.gone]
        if gone:
            self._queue = [i for i in self._queue if not i.job.gone]
            if self._metrics is not None:
                self._metrics.dropped_inputs.inc(len(gone))

    def _choose(self) -> List[_Input]:
        """The oldest input, then those closest to its length while the token budget lasts."""
        oldest = self._queue[0]
        budget = self.max_batch_tokens - oldest.cost
        chosen = [oldest]
        for item in sorted(self._queue[1:], key=lambda i: (abs(i.cost - oldest.cost), i.seq)):
            if item.cost <= budget:
                chosen.append(item)
                budget -= item.cost
        taken = {id(i) for i in chosen}
        self._queue = [i for i in self._queue if id(i) not in taken]
        now = time.perf_counter()
        if self._metrics is not None:
            for item in chosen:
                self._metrics.queue_seconds.observe(now - item.enqueued)
        return chosen

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_inputs.set(len(self._queue))

    # -- the model thread --------------------------------------------------------------------------
    def _runner(self) -> None:
        while True:
            with self._cond:
                while self._next is None:
                    if self._batcher_done:
                        return
                    self._cond.wait()
                chosen, rows, batch = self._next
                self._next = None
                self._cond.notify_all()
            if all(i.job.gone for i in chosen):
                if self._metrics is not None:
                    self._metrics.dropped_inputs.inc(len(chosen))
                continue
            start = time.perf_counter()
            try:
                results = self._compute(rows, batch)
            except Exception as exc:     # noqa: BLE001 - fails these requests, not the server
                self._fail(chosen, exc)
                continue
            self._count(rows, time.perf_counter() - start)
            for item, result in zip(chosen, results):
                if not item.job.gone:
                    item.job._deliver(item.index, result)

    def _fail(self, chosen: List[_Input], exc: BaseException) -> None:
        logger.error("a batch of %d inputs failed; its requests get 500", len(chosen), exc_info=exc)
        if self._metrics is not None:
            self._metrics.failed_batches.inc()
        error = BackendError(f"the model failed on a batch holding this request's inputs "
                             f"({type(exc).__name__}: {str(exc)[:200]}); other requests are unaffected")
        for job in {id(i.job): i.job for i in chosen}.values():
            job._fail(error)

    def _count(self, rows: List[Any], seconds: float) -> None:
        if self._metrics is None:
            return
        tokens = sum(len(r.input_ids) for r in rows)
        m = self._metrics
        m.batches.inc()
        m.inputs.inc(len(rows))
        m.tokens.inc(tokens)
        m.batch_inputs.observe(len(rows))
        m.batch_tokens.observe(tokens)
        m.forward_seconds.observe(seconds)
