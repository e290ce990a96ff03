"""Caption rows from concurrent requests in shared generation calls.

A request submits its rows (one image tensor, several styles) at once; one worker thread takes up to
`max_batch` waiting rows, in arrival order, and captions them in one call of `caption_rows`. When
fewer rows wait, it waits for more until the oldest waiting row has waited `max_wait_s`. Rows of
a request whose client went away (their futures cancelled) are dropped before generation. At most
`max_waiting` rows wait: a request that would pass that is refused whole (QueueFullError), so that an
overloaded server answers at once instead of letting every client wait ever longer.
"""
import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Sequence

import torch

#: caption_rows(pixels, styles) -> captions: uint8 [3, S, S] tensors and style names, one caption per row.
CaptionRows = Callable[[List[torch.Tensor], List[str]], List[str]]


class QueueFullError(RuntimeError):
    """Too many rows are waiting for generation; the request should be retried later."""


@dataclass
class CaptionedRow:
    """The caption of one row and when its generation call ended (time.monotonic())."""

    caption: str
    finished_at: float


@dataclass
class _Row:
    pixels: torch.Tensor  # uint8 [3, S, S]
    style: str
    arrived_at: float
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class CaptionBatcher:
    """One worker thread that captions submitted rows in generation calls of up to `max_batch` rows."""

    def __init__(self, caption_rows: CaptionRows, max_batch: int, max_wait_s: float, max_waiting: int):
        if max_batch < 1:
            raise ValueError(f"the batch must hold at least 1 row, got {max_batch}")
        if max_waiting < 1:
            raise ValueError(f"at least 1 row must be able to wait, got {max_waiting}")
        if max_wait_s < 0:
            raise ValueError(f"the batch wait cannot be negative, got {max_wait_s}")
        self.caption_rows = caption_rows
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_waiting = max_waiting
        #: generation calls made and rows captioned so far
        self.calls = 0
        self.rows = 0
        self._pending: Deque[_Row] = collections.deque()
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="caption-batcher", daemon=True)
        self._thread.start()

    def submit(self, pixels: torch.Tensor, styles: Sequence[str]) -> List[concurrent.futures.Future]:
        """Queue `pixels` (uint8 [3, S, S]) in each of `styles`; futures of CaptionedRow, in the order of `styles`.
        Raises QueueFullError, queueing nothing, when the rows would exceed `max_waiting`."""
        now = time.monotonic()
        rows = [_Row(pixels, style, now) for style in styles]
        with self._condition:
            if self._stopping:
                raise RuntimeError("the caption batcher is stopped")
            if len(self._pending) + len(rows) > self.max_waiting:
                raise QueueFullError(f"{len(self._pending)} rows are waiting for generation and this request adds "
                                     f"{len(rows)}, over the server's --max-waiting {self.max_waiting}")
            self._pending.extend(rows)
            self._condition.notify()
        return [row.future for row in rows]

    def stop(self) -> None:
        """Caption the rows already queued, then end the worker thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join()

    def _next_batch(self) -> Optional[List[_Row]]:
        """Up to `max_batch` rows once the batch is full or its oldest row has waited `max_wait_s`; None to stop."""
        with self._condition:
            while not self._pending and not self._stopping:
                self._condition.wait()
            if not self._pending:
                return None
            deadline = self._pending[0].arrived_at + self.max_wait_s
            while len(self._pending) < self.max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [row for row in batch if row.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                captions = self.caption_rows([row.pixels for row in live], [row.style for row in live])
            except Exception as error:  # the requests of this batch get the error; the worker goes on
                for row in live:
                    row.future.set_exception(error)
                continue
            finished_at = time.monotonic()
            self.calls += 1
            self.rows += len(live)
            for row, caption in zip(live, captions):
                row.future.set_result(CaptionedRow(caption, finished_at))
