"""What the per-target cursors cost the outbox: put and acknowledge N detections with 1..4 targets.

Each round puts ``--rows`` payloads (fsynced, as the daemon does) into a fresh outbox with ``k`` targets, then has
every target acknowledge every row in order (as the delivery threads do); it prints milliseconds per put and per
acknowledgement (medians of ``--rounds``) and the file size. The outbox sits in ``--dir`` (default: a temporary
directory; give a path on the SD card to measure a station).

usage: python bench/outbox_targets.py [--rows 500] [--rounds 3] [--dir PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox

TARGETS = ("mqtt", "birdweather", "webhook:home", "notifications")
PAYLOAD = {"detection_id": "", "station": "bench", "source": "mic", "start": "2026-12-06T20:00:00.000Z",
           "end": "2026-12-06T20:00:05.000Z", "species_code": "grtit1", "common_name": "Great Tit",
           "scientific_name": "Parus major", "confidence": 0.9, "model": {"name": "stsg", "version": "1"},
           "id": 1, "clip": "2026-12-06/grtit1_200005_1.flac"}


def one_round(directory: Path, targets: tuple[str, ...], rows: int) -> tuple[float, float, int]:
    """(ms per put, ms per acknowledgement, file bytes at the peak) for one fresh outbox."""
    path = directory / f"outbox-{len(targets)}-{time.monotonic_ns()}.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)), targets=targets)
    started = time.perf_counter()
    seqs = [outbox.put(PAYLOAD | {"detection_id": f"d{i}", "id": i}) for i in range(rows)]
    put_ms = (time.perf_counter() - started) * 1000 / rows
    size = path.stat().st_size + path.with_name(path.name + "-wal").stat().st_size
    started = time.perf_counter()
    for target in targets:
        for seq in seqs:
            outbox.ack(seq, target=target)
    ack_ms = (time.perf_counter() - started) * 1000 / (rows * len(targets))
    assert outbox.backlog() == 0
    outbox.close()
    return put_ms, ack_ms, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("targets  put ms  ack ms (per target and row)  peak file MB")
        for k in range(1, len(TARGETS) + 1):
            results = [one_round(Path(tmp), TARGETS[:k], args.rows) for _ in range(args.rounds)]
            put, ack, size = (statistics.median(r[i] for r in results) for i in range(3))
            print(f"{k:7d}  {put:6.2f}  {ack:6.3f}  {size / 2**20:12.2f}")


if __name__ == "__main__":
    main()
