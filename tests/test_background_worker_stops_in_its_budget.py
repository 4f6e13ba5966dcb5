"""A background task's thread (clips, archive) that waits for work ends within its stop budget, queued work done."""

from __future__ import annotations

import contextlib
import logging
import queue
import time

from daemon.service.background import BackgroundWorker
from daemon.service.service import STOP_BUDGETS_S


class IdleTask:
    """A task whose queue is empty until the test puts work into it."""

    name = "birdd-clips"

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.done: list[int] = []

    def work(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.done.append(self.queue.get(timeout=timeout))

    def drain(self, deadline: float) -> int:
        while not self.queue.empty() and time.monotonic() < deadline:
            self.done.append(self.queue.get_nowait())
        return self.queue.qsize()

    def pending(self) -> int:
        return self.queue.qsize()


def test_an_idle_worker_stops_within_the_shortest_budget_without_a_warning(caplog):
    budget = min(STOP_BUDGETS_S["birdd-clips"], STOP_BUDGETS_S["birdd-archive"])
    for _ in range(5):
        task = IdleTask()
        worker = BackgroundWorker(task)
        worker.start()
        time.sleep(0.05)
        task.queue.put(1)
        time.sleep(0.05)
        with caplog.at_level(logging.WARNING):
            worker.stop(timeout=budget)
        assert not worker.is_alive() and task.done == [1]
    assert "still running" not in caplog.text
