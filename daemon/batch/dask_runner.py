"""Run replay's tasks on a Dask distributed cluster (``birdd replay --dask ADDRESS|local``).

Each task (:func:`daemon.batch.replay.run_task`) is one segment of a long file or a few short files whole; a
worker process loads the bundle on its first task, checks its digest and keeps it. Workers read the audio and the
bundle by path, so every worker must see the same paths (a shared file system). Results come back in submission
order, with a bounded number of tasks in flight, so memory stays flat however many tasks there are. A worker
that dies has its tasks run again elsewhere by the scheduler; each task's result is taken once, in order, so no
row is lost or doubled.

Three Dask defaults cost replay dearly and are changed for ``--dask local`` (:data:`WORKER_CONFIG`): the
nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which disables glibc's dynamic mmap threshold, so
every array over 128 kB is mapped, zero-filled by page faults and unmapped again (on 700 one-minute files this
took 1.9x the CPU time of the process pool, 40 % of it in the kernel); the workers' statistical profiler samples
the task thread every 10 ms; and workers are spawned, so each imports Dask, NumPy and birdd afresh (about 1 CPU s
each). Local workers are forked instead, as the process pool's are (from a process whose other threads are
Dask's own event loops; each worker loads the bundle itself, as the pool's do). Separately started workers read
their own configuration: the client warns when they run with the trim threshold set (``docs/scale.md`` shows
the worker configuration).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from daemon.batch.replay import ReplayJob, Runner, Task, TaskResult, run_task
from daemon.errors import BirddError

log = logging.getLogger(__name__)

LOCAL = "local"
"""``--dask local``: a LocalCluster on this machine, one single-threaded worker process per core"""
LOOPBACK = "127.0.0.1"
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
WORKER_CONFIG = {
    f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None,  # None: the nanny leaves it unset
    "distributed.worker.profile.enabled": False,
    "distributed.worker.multiprocessing-method": "fork",
}
"""Dask configuration of ``--dask local`` workers (see the module docstring)"""
TASKS_PER_WORKER_THREAD = 8
"""tasks kept in flight per worker thread: enough to hide scheduling latency, few enough to bound memory"""


def dask_runner(address: str, jobs: int = 0) -> Runner:
    """A runner on the cluster at ``address`` (``tcp://host:8786``), or on a LocalCluster of ``jobs`` workers."""
    try:
        import distributed  # noqa: F401  (the optional extra birdd[dask])
    except ImportError:
        raise BirddError("--dask needs Dask distributed: pip install 'birdd[dask]'") from None

    def run(job: ReplayJob, tasks: list[Task]) -> Iterator[TaskResult]:
        with _client(address, jobs) as client:
            _warn_about_trimming(client)
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


def _warn_about_trimming(client) -> None:
    trimming = {value for value in client.run(_trim_threshold).values() if value is not None}
    if trimming:
        log.warning("dask workers run with %s=%s (the nanny's default), which makes replay up to 2x slower; "
                    "start them with distributed.nanny.pre-spawn-environ.%s: null in their Dask configuration "
                    "(docs/scale.md)", TRIM_VARIABLE, ",".join(sorted(trimming)), TRIM_VARIABLE)


def _trim_threshold() -> str | None:
    """The worker's ``MALLOC_TRIM_THRESHOLD_`` (runs in the worker: ``os.environ.get`` itself would be pickled
    with the client's environment)."""
    return os.environ.get(TRIM_VARIABLE)


@contextmanager
def _client(address: str, jobs: int):
    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would drown replay's
    if address == LOCAL:
        workers = jobs or len(os.sched_getaffinity(0))
        # no dashboard; the scheduler's HTTP routes (health, metrics) on a free loopback port, not 8787
        with dask.config.set(WORKER_CONFIG), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=f"{LOOPBACK}:0",
                scheduler_kwargs={"dashboard": False}, silence_logs=logging.WARNING) as cluster, \
                Client(cluster) as client:
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
