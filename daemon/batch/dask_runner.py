"""Run replay's tasks on a Dask distributed cluster (``birdd replay --dask ADDRESS|local``).

Each task (:func:`daemon.batch.replay.run_task`) is one segment of a long file or a few short files whole; a
worker process loads the bundle on its first task, checks its digest and keeps it. Workers read the audio and the
bundle by path, so every worker must see the same paths (a shared file system). Results come back in submission
order, with a bounded number of tasks in flight, so memory stays flat however many tasks there are. A worker
that dies has its tasks run again elsewhere by the scheduler; each task's result is taken once, in order, so no
row is lost or doubled.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from daemon.batch.replay import ReplayJob, Runner, SegmentResult, Task, run_task
from daemon.errors import BirddError

log = logging.getLogger(__name__)

LOCAL = "local"
"""``--dask local``: a LocalCluster on this machine, one single-threaded worker process per core"""
TASKS_PER_WORKER_THREAD = 8
"""tasks kept in flight per worker thread: enough to hide scheduling latency, few enough to bound memory"""


def dask_runner(address: str, jobs: int = 0) -> Runner:
    """A runner on the cluster at ``address`` (``tcp://host:8786``), or on a LocalCluster of ``jobs`` workers."""
    try:
        import distributed  # noqa: F401  (the optional extra birdd[dask])
    except ImportError:
        raise BirddError("--dask needs Dask distributed: pip install 'birdd[dask]'") from None

    def run(job: ReplayJob, tasks: list[Task]) -> Iterator[list[SegmentResult]]:
        with _client(address, jobs) as client:
            threads = sum(client.nthreads().values())
            log.info("dask: %d task(s) on %d worker thread(s) at %s", len(tasks), threads,
                     client.scheduler.address)
            in_flight: deque = deque()
            pending = iter(tasks)
            limit = max(TASKS_PER_WORKER_THREAD * threads, 2)
            for task in pending:
                in_flight.append(client.submit(run_task, job, task, pure=False))
                if len(in_flight) >= limit:
                    break
            while in_flight:
                future = in_flight.popleft()
                result = future.result()
                future.release()
                task = next(pending, None)
                if task is not None:
                    in_flight.append(client.submit(run_task, job, task, pure=False))
                yield result

    return run


@contextmanager
def _client(address: str, jobs: int):
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would drown replay's
    if address == LOCAL:
        workers = jobs or len(os.sched_getaffinity(0))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise BirddError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
    with client:
        if not client.nthreads():
            client.wait_for_workers(1, timeout=60)
        yield client
