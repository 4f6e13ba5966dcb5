"""``birdd web`` on a small board's budget, and the server library chosen by measurement.

Fills a detection store with --rows detections (default 100,000, over 60 days, with real FLAC clips and
PNG spectrograms for the newest --clips), then for each server in --servers runs it as its own process
over that store and measures, side by side in one run:

- latency of ``/api/v2/detections/recent`` (sequential, keep-alive): p50 / p99 (target p99 <= 50 ms);
- idle: RSS and CPU over --idle-s with one live-stream (SSE) client open, as a browser tab would;
- load: --rate requests/s for --load-s, open-loop (a mix of what the page and API clients ask:
  recent, a day's page, the daily summary, KPIs, spectrograms, clips): achieved rate, errors, p50/p99
  from the scheduled send time, peak RSS (target 20 req/s with RSS <= 80 MB) and CPU share of one core;
- live stream: commit-to-receive delay of --sse-samples new detections (target <= 1 s).

Servers: ``stdlib`` is ``birdd web`` itself (http.server.ThreadingHTTPServer); ``aiohttp`` serves the very
same endpoint code (daemon.web.api) from an aiohttp application, for comparison only.

usage: python bench/web_bench.py [--rows 100000] [--rate 20] [--load-s 60] [--idle-s 30]
       [--servers stdlib,aiohttp] [--out out/bench/web]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.config import StoreConfig, config_from_dict  # noqa: E402
from daemon.pipeline.detection import Detection, iso_utc  # noqa: E402
from daemon.store.schema import open_store  # noqa: E402
from daemon.store.writer import DetectionStore, local_date_time  # noqa: E402

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SPECIES = [(f"sp{i:03d}", f"Species {i}", f"Genus species{i}") for i in range(120)]
MIX = [("/api/v2/detections/recent", 8), ("/api/v2/detections?date={today}&limit=24", 4),
       ("/api/v2/analytics/species/daily?date={today}", 3), ("/api/v2/dashboard/kpis", 1),
       ("/api/v2/spectrogram/{clip_id}?size=sm", 3), ("/api/v2/audio/{clip_id}", 1)]
"""paths and their weights in the load (a page view plus API polling)"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def fill(root: Path, rows: int, clips: int, rng: np.random.Generator) -> tuple[Path, Path, list[int]]:
    """A store of ``rows`` detections over 60 days ending now; the newest ``clips`` have a clip on disk."""
    path, clip_dir = root / "detections.sqlite", root / "clips"
    clip_dir.mkdir(parents=True)
    conn = open_store(path, read_only=False)
    now = time.time()
    ends = np.sort(now - rng.uniform(60, 60 * 86_400, rows))
    records = []
    for i, end in enumerate(ends):
        code, common, scientific = SPECIES[int(rng.zipf(1.6)) % len(SPECIES)]
        day, clock = local_date_time(float(end))
        records.append((f"bench{i}", "bench", "mic", iso_utc(end - 5), iso_utc(end), end - 5, end, day, clock,
                        code, common, scientific, float(rng.uniform(0.3, 1.0)), '{"name":"bench"}'))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO detections (detection_id, station, source, start_utc, end_utc, start_epoch,"
                     " end_epoch, local_date, local_time, species_code, common_name, scientific_name, confidence,"
                     " model) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", records)
    conn.execute("COMMIT")
    tone = (0.3 * np.sin(2 * np.pi * 3000 * np.arange(7 * 32_000) / 32_000)).astype(np.float32)
    png = (ROOT / "docs" / "web_page.png").read_bytes()[:60_000]  # size of a real spectrogram, content unread
    clip_ids = [r[0] for r in conn.execute("SELECT id FROM detections ORDER BY id DESC LIMIT ?", (clips,))]
    for row_id in clip_ids:
        name = f"c{row_id}"
        sf.write(clip_dir / f"{name}.flac", tone, 32_000, format="FLAC")
        (clip_dir / f"{name}.png").write_bytes(png)
        conn.execute("UPDATE detections SET clip = ?, spectrogram = ? WHERE id = ?",
                     (f"{name}.flac", f"{name}.png", row_id))
    conn.close()
    return path, clip_dir, clip_ids


class Server:
    """One server process over the store."""

    def __init__(self, kind: str, store: Path, clips: Path, workdir: Path):
        self.kind = kind
        self.port = free_port()
        config = workdir / f"{kind}.toml"
        config.write_text(f'[store]\npath = "{store}"\n[clips]\ndir = "{clips}"\n'
                          f'[web]\nbind = "{HOST}"\nport = {self.port}\n[logging]\nlevel = "WARNING"\n')
        command = ([str(Path(sys.executable).with_name("birdd")), "web", "-c", str(config)] if kind == "stdlib"
                   else [sys.executable, __file__, "--serve-aiohttp", str(config)])
        self.log = (workdir / f"{kind}.log").open("wb")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            conn.request("GET", "/api/v2/ping")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)
        self.log.close()


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def latency(server: Server, requests: int) -> dict:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        assert get(conn, "/api/v2/detections/recent") == 200
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return {"recent_p50_ms": percentile(times, 50), "recent_p99_ms": percentile(times, 99)}


class SseReader:
    """A live-stream client on a socket; records when each detection event arrives."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.sock.sendall(b"GET /api/v2/detections/stream HTTP/1.1\r\nHost: bench\r\n\r\n")
        self.arrivals: dict[int, float] = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self.sock.recv(65536):
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if b"event: detection" in event:
                        data = json.loads(event.split(b"data: ", 1)[1])
                        self.arrivals[data["id"]] = time.monotonic()
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def idle(server: Server, seconds: float) -> dict:
    reader = SseReader(server.port)
    time.sleep(2)
    cpu0, rss = server.cpu_s(), []
    for _ in range(int(seconds)):
        time.sleep(1)
        rss.append(server.rss_mb())
    cpu = (server.cpu_s() - cpu0) / int(seconds) * 100
    reader.close()
    return {"idle_rss_mb": max(rss), "idle_cpu_pct": cpu}


def load(server: Server, rate: float, seconds: float, clip_ids: list[int], rng: random.Random) -> dict:
    today = time.strftime("%Y-%m-%d")
    paths = [p for p, w in MIX for _ in range(w)]
    jobs: queue.Queue = queue.Queue()
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
        while (job := jobs.get()) is not None:
            scheduled, path = job
            try:
                status = get(conn, path)
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
                status = 0
            with lock:
                results.append((time.monotonic() - scheduled, status))
        conn.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    for thread in workers:
        thread.start()
    cpu0, rss, started = server.cpu_s(), [], time.monotonic()
    count = int(rate * seconds)
    for i in range(count):
        scheduled = started + i / rate
        time.sleep(max(0.0, scheduled - time.monotonic()))
        path = rng.choice(paths).format(today=today, clip_id=rng.choice(clip_ids))
        jobs.put((scheduled, path))
        if i % int(rate) == 0:
            rss.append(server.rss_mb())
    for _ in workers:
        jobs.put(None)
    for thread in workers:
        thread.join(30)
    elapsed = time.monotonic() - started
    cpu = (server.cpu_s() - cpu0) / elapsed * 100
    times = [t * 1000 for t, status in results if status == 200]
    return {"load_rate": len(times) / elapsed, "load_errors": sum(status != 200 for _, status in results),
            "load_p50_ms": percentile(times, 50), "load_p99_ms": percentile(times, 99),
            "load_rss_mb": max([*rss, server.rss_mb()]), "load_cpu_pct": cpu}


def sse_delay(server: Server, store: Path, samples: int) -> dict:
    reader = SseReader(server.port)
    time.sleep(1)
    writer = DetectionStore(StoreConfig(path=str(store), max_rows=10_000_000))
    delays = []
    for i in range(samples):
        end = time.time() - 1
        detection = Detection(f"sse{server.kind}{i}-{end}", "bench", "mic", iso_utc(end - 5), iso_utc(end),
                              "sp001", "Species 1", "Genus species1", 0.9, {"name": "bench"})
        committed = time.monotonic()
        row_id, _ = writer.add(detection)
        deadline = committed + 5
        while row_id not in reader.arrivals and time.monotonic() < deadline:
            time.sleep(0.005)
        delays.append(reader.arrivals.get(row_id, float("inf")) - committed)
        time.sleep(0.3)
    writer.close()
    reader.close()
    return {"sse_p50_s": statistics.median(delays), "sse_max_s": max(delays)}


def serve_aiohttp(config_path: str) -> None:
    """The same endpoint code behind aiohttp (comparison only; birdd ships the standard library's server)."""
    import asyncio

    from aiohttp import web

    from daemon.config import load_config
    from daemon.web.api import BirdnetGoApi, Unhealthy
    from daemon.web.media import OpenMedia
    from daemon.web.params import HttpError, Query
    from daemon.web.pool import StorePool
    from daemon.web.server import find_route
    from daemon.web.sse import DetectionStream

    config = load_config(config_path)
    store = StorePool(config.store.path)
    api = BirdnetGoApi(store, Path(config.clips.dir))
    stopping = threading.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            method, accepted, ids = find_route(request.path)
            query = Query(request.query_string, accepted)
            if method == "stream":
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                loop = asyncio.get_running_loop()
                chunks: asyncio.Queue = asyncio.Queue()
                stream = DetectionStream(store, config.web.sse_poll_s, False, stopping, lambda: 1)
                loop.run_in_executor(None, stream.run, lambda b: loop.call_soon_threadsafe(chunks.put_nowait, b))
                while True:
                    await response.write(await chunks.get())
            result = await asyncio.to_thread(getattr(api, method), query, False, *ids)
        except HttpError as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        if isinstance(result, OpenMedia):
            try:
                data = os.read(result.fd, result.size)
            finally:
                result.close()
            return web.Response(body=data, content_type=result.content_type)
        if isinstance(result, Unhealthy):
            return web.json_response(result.body, status=503)
        return web.json_response(result)

    async def stop_streams(_app: web.Application) -> None:
        stopping.set()

    app = web.Application()
    app.on_shutdown.append(stop_streams)
    app.router.add_get("/{tail:.*}", handle)
    web.run_app(app, host=config.web.bind, port=config.web.port, print=None, handle_signals=True,
                shutdown_timeout=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--load-s", type=float, default=60.0)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests for the latency figure")
    parser.add_argument("--sse-samples", type=int, default=20)
    parser.add_argument("--servers", default="stdlib,aiohttp")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench" / "web")
    parser.add_argument("--serve-aiohttp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_aiohttp:
        serve_aiohttp(args.serve_aiohttp)
        return
    config_from_dict({})  # the package imports and validates
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        store, clips, clip_ids = fill(workdir / "station", args.rows, args.clips, np.random.default_rng(12))
        print(f"store: {args.rows} detections, {len(clip_ids)} clips, filled in {time.monotonic() - started:.1f} s",
              flush=True)
        report = {}
        for kind in args.servers.split(","):
            server = Server(kind, store, clips, workdir)
            try:
                figures = {"start_rss_mb": server.rss_mb()}
                figures |= latency(server, args.requests)
                figures |= idle(server, args.idle_s)
                figures |= load(server, args.rate, args.load_s, clip_ids, random.Random(5))
                figures |= sse_delay(server, store, args.sse_samples)
            finally:
                server.stop()
            report[kind] = figures
            print(kind, json.dumps({k: round(v, 3) for k, v in figures.items()}), flush=True)
    (args.out / "web_bench.json").write_text(json.dumps(report, indent=2))
    print(f"written {args.out / 'web_bench.json'}")


if __name__ == "__main__":
    main()
