"""What the daemon's audio archive costs: FLAC bytes and write time per minute of field audio, and how many days
the default cap holds.

Writes the first minute of each of --files soundscapes through the archive's own writer
(``ArchiveDirectory.write``: FLAC encoding, temporary file, fsync, rename) into a temporary directory, and
prints the median, smallest and largest file per minute, the median wall time of a write, and the days of
audio that ``archive.max_total_mb`` holds at ``archive.minutes_per_hour`` (the defaults, or --per-hour/--cap-mb).

usage: python bench/audio_archive_size.py [--data ../shared/bench206] [--files 30] [--per-hour 5] [--cap-mb 2048]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from daemon.archive.directory import ArchiveCounters, ArchiveDirectory
from daemon.archive.minutes import SECONDS_PER_MINUTE
from daemon.archive.sampler import ArchivePiece
from daemon.audio.files import find_audio_files, read_audio
from daemon.clips.policy import MB
from daemon.config import ArchiveConfig
from daemon.constants import SAMPLE_RATE

HOURS_PER_DAY = 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--per-hour", type=int, default=ArchiveConfig.minutes_per_hour)
    parser.add_argument("--cap-mb", type=float, default=ArchiveConfig.max_total_mb)
    args = parser.parse_args()
    sources = find_audio_files([args.data / "train_soundscapes"])[: args.files]
    per_minute, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        archive = ArchiveDirectory(ArchiveConfig(dir=tmp, min_free_mb=0), ArchiveCounters())
        archive.open()
        for i, path in enumerate(sources):
            minute = read_audio(path)[: SECONDS_PER_MINUTE * SAMPLE_RATE]
            before = archive.total_bytes
            started = time.perf_counter()
            archive.write(ArchivePiece(path.stem, 1_800_000_000 + SECONDS_PER_MINUTE * i, minute))
            seconds.append(time.perf_counter() - started)
            per_minute.append((archive.total_bytes - before) / MB * SECONDS_PER_MINUTE * SAMPLE_RATE / minute.size)
    median = statistics.median(per_minute)
    per_day = median * args.per_hour * HOURS_PER_DAY
    days = args.cap_mb / per_day
    print(f"{len(sources)} one-minute pieces of {args.data / 'train_soundscapes'}")
    print(f"FLAC per minute: median {median:.2f} MB (smallest {min(per_minute):.2f}, largest {max(per_minute):.2f}); "
          f"raw 16-bit would be {SECONDS_PER_MINUTE * SAMPLE_RATE * 2 / MB:.2f} MB")
    print(f"write (encode, fsync, rename): median {1000 * statistics.median(seconds):.0f} ms per minute of audio")
    print(f"{args.per_hour} minutes an hour: {per_day:.0f} MB a day; a {args.cap_mb:.0f} MB cap holds {days:.1f} days "
          f"({days * args.per_hour * HOURS_PER_DAY / SECONDS_PER_MINUTE:.0f} h of audio)")


if __name__ == "__main__":
    main()
