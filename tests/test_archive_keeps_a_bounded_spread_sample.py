"""The audio archive keeps the chosen minutes of each hour as FLAC files named with their UTC start, within its
disk cap (oldest deleted first), writes atomically, and survives a full or read-only disk without raising, saying
so once each way (a log line, a status event)."""

from __future__ import annotations

import itertools
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_process import Daemon, write_config

from daemon.archive.archive import QUEUED_PIECES, AudioArchive
from daemon.archive.directory import ArchiveCounters, ArchiveDirectory, file_name
from daemon.archive.minutes import kept_minutes
from daemon.archive.sampler import ArchivePiece, ArchiveSampler
from daemon.atomic import AtomicWriter
from daemon.audio.files import find_audio_files
from daemon.batch.recording_time import recording_start
from daemon.clips.encode import encode_clip
from daemon.clips.policy import MB
from daemon.config import ArchiveConfig, Config
from daemon.constants import BLOCK_SAMPLES, SAMPLE_RATE
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.scoring import AudioBlock
from daemon.write_faults import RETRY_INITIAL_S

DiskUsage = namedtuple("DiskUsage", "total used free")
PLENTY = DiskUsage(10**12, 0, 10**12)
HOUR = 1_800_000_000  # a whole UTC hour: 2027-01-15 08:00:00
UNIT = Path(__file__).resolve().parent.parent / "systemd" / "birdd.service"


def noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return (0.1 * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def blocks(audio: np.ndarray, source: str = "mic:USB", first: int = 0) -> list[AudioBlock]:
    """``audio`` as the pipeline thread reads it: 100-ms blocks from stream sample ``first`` on."""
    return [AudioBlock(first + i, audio[i: i + BLOCK_SAMPLES], source)
            for i in range(0, audio.size, BLOCK_SAMPLES)]


def sample(sampler: ArchiveSampler, stream: Iterable[AudioBlock]) -> list[ArchivePiece]:
    pieces = [piece for block in stream for piece in sampler.push(block)]
    return pieces + sampler.flush()


def directory(root: Path, free: DiskUsage = PLENTY, **config: object) -> ArchiveDirectory:
    archive = ArchiveDirectory(ArchiveConfig(dir=str(root), **config), ArchiveCounters(), disk_usage=lambda path: free)
    archive.open()
    return archive


def on_disk(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("per_hour", [1, 5, 7, 10, 13, 30, 59, 60])
def test_the_kept_minutes_are_spread_over_the_hour_and_in_turn_cover_every_minute(per_hour):
    gap = math.ceil(60 / per_hour)
    seen = set()
    for hour in range(1_000_000, 1_000_000 + gap):  # a day or less from 3 minutes an hour on
        minutes = sorted(kept_minutes(hour, per_hour))
        assert len(minutes) == per_hour and minutes[0] >= 0 and minutes[-1] <= 59
        assert all(b - a in (60 // per_hour, gap) for a, b in itertools.pairwise(minutes))  # evenly spread
        seen.update(minutes)
    assert seen == set(range(60))  # the pattern moves on each hour: nothing on a fixed schedule is always missed


def test_the_sampler_keeps_exactly_the_kept_minutes_cut_at_minute_source_and_gap(rng):
    clock = StreamClock(HOUR - 90)  # the stream starts 90 s before the hour, so it crosses into a new hour
    audio = noise(rng, 300)
    stream = blocks(audio[: 100 * SAMPLE_RATE]) + blocks(audio[100 * SAMPLE_RATE:200 * SAMPLE_RATE], "file.wav",
                                                         100 * SAMPLE_RATE)
    stream += blocks(audio[210 * SAMPLE_RATE:], "file.wav", 210 * SAMPLE_RATE)  # 10 s never heard (a gap)
    pieces = sample(ArchiveSampler(60, clock), stream)
    starts = [(piece.start_time - clock.epoch, piece.seconds, piece.source) for piece in pieces]
    assert starts == [(0.0, 30.0, "mic:USB"), (30.0, 60.0, "mic:USB"), (90.0, 10.0, "mic:USB"),
                      (100.0, 50.0, "file.wav"), (150.0, 50.0, "file.wav"), (210.0, 0.0 + 60.0, "file.wav"),
                      (270.0, 30.0, "file.wav")]
    for piece in pieces:  # the very samples heard
        first = round((piece.start_time - clock.epoch) * SAMPLE_RATE)
        assert np.array_equal(piece.samples, audio[first: first + piece.samples.size])



def test_five_minutes_an_hour_are_the_kept_minutes_whole():
    clock = StreamClock(HOUR - 1800)
    silence = np.zeros(BLOCK_SAMPLES, np.float32)
    stream = (AudioBlock(i, silence, "mic:") for i in range(0, 5400 * SAMPLE_RATE, BLOCK_SAMPLES))  # 1.5 hours
    kept = [(piece.start_time, piece.seconds) for piece in sample(ArchiveSampler(5, clock), stream)]
    hour = HOUR // 3600
    expected = [((hour - 1) * 3600 + 60 * m, 60.0) for m in sorted(kept_minutes(hour - 1, 5)) if m >= 30]
    expected += [(hour * 3600 + 60 * m, 60.0) for m in sorted(kept_minutes(hour, 5))]
    assert kept == expected and len(kept) >= 7


def test_file_names_say_the_utc_start_and_source_and_replay_reads_them_back(tmp_path, rng):
    archive = directory(tmp_path / "archive")
    start = HOUR + 754.6  # 08:12:34.6 UTC
    for source in ("mic:USB Audio Device", "/data/site 3/20240501_053000.WAV", "mic:"):
        assert archive.write(ArchivePiece(source, start, noise(rng, 6)))
    names = sorted(on_disk(archive.root))
    assert names == ["2027-01-15/20240501-053000_20270115_081234.flac", "2027-01-15/mic-USB-Audio-Device_"
                     "20270115_081234.flac", "2027-01-15/mic_20270115_081234.flac"]
    for name in names:
        assert recording_start(archive.root / name) == datetime(2027, 1, 15, 8, 12, 34, tzinfo=UTC)
        audio, rate = sf.read(archive.root / name, dtype="float32")
        assert rate == SAMPLE_RATE and audio.size == 6 * SAMPLE_RATE
    assert file_name(ArchivePiece("", start, noise(rng, 6))).endswith("/audio_20270115_081234.flac")


def test_the_cap_deletes_the_oldest_first_and_holds_across_restarts(tmp_path, rng):
    pieces = [ArchivePiece("mic:", HOUR + 60 * i, noise(rng, 10)) for i in range(12)]
    cap_mb = 3.5 * max(len(encode_clip(p.samples, SAMPLE_RATE, "flac")) for p in pieces) / 2**20  # 3 files fit
    archive = directory(tmp_path / "archive", max_total_mb=cap_mb)
    for piece in pieces[:6]:
        assert archive.write(piece)
        assert sum(on_disk(archive.root).values()) <= cap_mb * 2**20
    assert sorted(on_disk(archive.root)) == sorted(file_name(p) for p in pieces[3:6])
    assert archive.counters.deleted_cap == 3 and archive.counters.written == 6
    assert archive.total_bytes == sum(on_disk(archive.root).values()) and archive.files == 3

    again = directory(tmp_path / "archive", max_total_mb=cap_mb)  # a restart indexes what is there, by recording time
    assert again.files == 3 and again.total_bytes == archive.total_bytes
    for piece in reversed(pieces[6:9]):  # written newest first: still the oldest recording goes first
        assert again.write(piece)
    assert sorted(on_disk(again.root)) == sorted(file_name(p) for p in pieces[6:9])
    (again.root / "mine.txt").write_text("the operator's own file")
    assert not again.write(ArchivePiece("mic:", HOUR + 3600, noise(rng, 40)))  # larger than the cap: not written
    assert "mine.txt" in on_disk(again.root) and again.files == 3 and again.counters.skipped_disk == 1


def test_below_the_free_space_floor_nothing_is_written(tmp_path, rng):
    archive = directory(tmp_path / "archive", free=DiskUsage(10**9, 10**9, 400 * 2**20), min_free_mb=500)
    assert not archive.write(ArchivePiece("mic:", HOUR, noise(rng, 10)))
    assert on_disk(archive.root) == {} and archive.counters.skipped_disk == 1


def test_a_killed_write_leaves_only_a_temporary_file_which_the_next_start_deletes(tmp_path, rng):
    root = tmp_path / "archive"
    script = f"""
import numpy as np
from daemon.archive.directory import ArchiveCounters, ArchiveDirectory
from daemon.archive.sampler import ArchivePiece
from daemon.config import ArchiveConfig
archive = ArchiveDirectory(ArchiveConfig(dir={str(root)!r}), ArchiveCounters())
archive.open()
rng = np.random.default_rng(1)
audio = (0.1 * rng.standard_normal(60 * 32000)).astype(np.float32)
for i in range(100000):
    archive.write(ArchivePiece("mic:", {HOUR} + 60 * i, audio))
    print(i, flush=True)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    leftovers = 0
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
        process.stdout.readline()  # one file written: the next one is under way
        time.sleep(0.01 + 0.03 * rng.random())
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process.stdout.close()
        for path in root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):  # under its final name: always whole
                audio, _ = sf.read(path, dtype="float32")
                assert audio.size == 60 * SAMPLE_RATE, path
        leftovers += sum(1 for path in root.rglob(".*") if path.is_file())
        directory(tmp_path / "archive")  # the next start
        assert not [path for path in root.rglob(".*") if path.is_file()]
    assert leftovers <= 4  # at most the file under way at each kill (often one: the kill came while it was written)

    writer = AtomicWriter(root / "x" / "mic_20270115_080000.flac", binary=True)  # killed before its commit:
    writer.write(b"half a file")
    writer.file.close()
    (root / "x" / "mine.flac").write_bytes(b"")  # not named like the archive's files: neither indexed nor deleted
    again = directory(root)
    assert [p.name for p in (root / "x").iterdir()] == ["mine.flac"]
    assert again.files == sum(1 for p in root.rglob("mic_*.flac"))


def fault_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The archive's fault lines (level, message), as :class:`~daemon.write_faults.WriteFault` logs them."""
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "daemon.write_faults" and r.getMessage().startswith("archive ")]


def test_a_full_then_read_only_disk_is_counted_and_logged_once(small_fs, rng, caplog):
    archive = directory(small_fs, min_free_mb=0)  # a 16 MB tmpfs
    counters = archive.counters
    caplog.set_level(logging.INFO)
    minute = noise(rng, 60)  # made once: the writes follow each other within the back-off
    written = [archive.write(ArchivePiece("mic:", HOUR + 60 * i, minute)) for i in range(12)]
    assert written[0] and not any(written[-3:])  # about 3 MB a minute of noise: 16 MB holds a few
    assert counters.failed == 1  # one try; the later pieces come before the back-off allows another
    assert counters.skipped_unwritable == written.count(False) - 1 >= 2
    assert [level for level, _ in fault_lines(caplog)] == [logging.ERROR]
    assert "No space left on device" in fault_lines(caplog)[0][1] and archive.error
    assert not [p for p in small_fs.rglob(".*") if p.is_file()]  # a failed write leaves no temporary file

    for path in sorted(small_fs.rglob("*.flac"))[:2]:
        path.unlink()
    time.sleep(RETRY_INITIAL_S * 1.1)  # the retry waits for its back-off (monotonic clock)
    assert archive.write(ArchivePiece("mic:", HOUR + 3600, noise(rng, 10)))
    assert fault_lines(caplog)[1][0] == logging.WARNING and "writable again" in fault_lines(caplog)[1][1]
    assert archive.error == ""
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    assert not archive.write(ArchivePiece("mic:", HOUR + 7200, noise(rng, 10)))  # back-off reset: tried at once
    assert len(fault_lines(caplog)) == 3 and "Read-only file system" in fault_lines(caplog)[2][1]  # a new spell


def test_an_unwritable_archive_publishes_one_event_each_way(tmp_path, rng, caplog):
    root = tmp_path / "archive"
    events: list[tuple[str, str]] = []
    archive = AudioArchive(ArchiveConfig(dir=str(root), minutes_per_hour=60), StreamClock(HOUR),
                           lambda kind, message: events.append((kind, message)))
    caplog.set_level(logging.INFO)

    def archive_minute(minute: int) -> None:
        feed = archive.feed()
        for block in blocks(noise(rng, 10), first=60 * minute * SAMPLE_RATE):
            feed.put_audio(block)
        feed.end_audio()
        archive.work(1.0)

    (root / "2027-01-15").write_text("not a directory")  # where the day's files go: every write fails
    archive_minute(0)
    archive_minute(1)  # within the back-off: not tried
    status = archive.status()["archive"]
    assert (status["failed"], status["skipped_unwritable"], status["written"]) == (1, 1, 0)
    assert [kind for kind, _ in events] == ["archive_write_failed"] and "File exists" in events[0][1]
    assert status["error"] == events[0][1]

    (root / "2027-01-15").unlink()
    time.sleep(RETRY_INITIAL_S * 1.1)
    archive_minute(2)
    archive_minute(3)
    assert [kind for kind, _ in events] == ["archive_write_failed", "archive_writable"]
    assert archive.status()["archive"]["written"] == 2 and archive.status()["archive"]["error"] == ""
    assert [level for level, _ in fault_lines(caplog)] == [logging.ERROR, logging.WARNING]  # one line each way
    assert "2 piece(s) not kept" in fault_lines(caplog)[1][1]


@pytest.mark.integration
def test_the_daemon_says_on_the_status_topic_that_it_cannot_write_the_archive(tmp_path, mosquitto, subscribe,
                                                                               trained_model, synthetic_corpus):
    blocker = tmp_path / "usb"
    blocker.write_text("a file where the archive's disk should be: the archive cannot be made")
    prefix = "birdd/archive"
    sub = subscribe(mosquitto, f"{prefix}/#")
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "archive"},
        "audio": {"source": "file", "files": [str(sorted((synthetic_corpus / "test_soundscapes").iterdir())[0])],
                  "realtime": True, "loop": True},
        "model": {"path": str(trained_model)},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "ha_discovery": False, "status_interval_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"enabled": False},
        "archive": {"enabled": True, "dir": str(blocker / "archive"), "minutes_per_hour": 60},
    })
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        events = sub.wait_for(lambda ms: any(m.json()["kind"] == "archive_write_failed" for m in ms),
                              topic=f"{prefix}/status/events", timeout=60)
        stats = sub.wait_for(lambda ms: any("archive" in m.json() for m in ms), topic=f"{prefix}/status/stats",
                             timeout=30)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0  # running all along: the archive is never worth a restart
    finally:
        daemon.close()
    failed = next(m.json()["message"] for m in events if m.json()["kind"] == "archive_write_failed")
    assert "Not a directory" in failed and stats[-1].json()["archive"]["error"] == failed
    log = (tmp_path / "daemon.log").read_text()
    assert len([line for line in log.splitlines() if "daemon.write_faults: archive " in line]) == 1, log
    assert "Traceback" not in log


def test_the_pipeline_thread_never_waits_for_the_archive(tmp_path, rng):
    clock = StreamClock(HOUR)
    archive = AudioArchive(ArchiveConfig(dir=str(tmp_path / "archive"), minutes_per_hour=60), clock)
    audio = noise(rng, 60 * (QUEUED_PIECES + 2) + 3)
    started = time.perf_counter()
    feed = archive.feed()
    for block in blocks(audio):
        feed.put_audio(block)  # nobody writes: the queue fills up
    feed.end_audio()  # 3 s left over: shorter than a window, not kept
    assert time.perf_counter() - started < 5
    assert archive.pending() == QUEUED_PIECES
    assert (archive.counters.dropped_busy, archive.counters.too_short) == (2, 1)
    archive.work(0.1)
    assert archive.pending() == QUEUED_PIECES - 1 and archive.directory.files == 1
    assert archive.drain(time.monotonic()) == QUEUED_PIECES - 1  # no time left at stop: given up, counted
    assert archive.pending() == 0
    status = archive.status()["archive"]
    assert status["written"] == 1 and status["not_written_at_stop"] == QUEUED_PIECES - 1 and status["files"] == 1


def test_each_source_has_its_own_room_in_the_queue(tmp_path, rng):
    archive = AudioArchive(ArchiveConfig(dir=str(tmp_path / "archive"), minutes_per_hour=60), StreamClock(HOUR))
    feeds = [archive.feed("garden"), archive.feed("pond")]
    audio = noise(rng, 60 * QUEUED_PIECES)
    for feed in feeds:  # a fast replay of two sources: each finishes its pieces before the thread writes one
        for block in blocks(audio):
            feed.put_audio(block)
        feed.end_audio()
    assert archive.pending() == 2 * QUEUED_PIECES and archive.counters.dropped_busy == 0
    assert archive.drain(time.monotonic() + 10) == 0
    assert {path.parent.parent.name for path in (tmp_path / "archive").rglob("*.flac")} == {"garden", "pond"}


def test_the_default_archive_directory_is_writable_in_the_units_sandbox():
    unit = UNIT.read_text()
    state = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("StateDirectory="))
    assert Path(Config().archive.dir).is_relative_to(Path("/var/lib") / state)
    assert not Config().archive.enabled


def test_every_source_has_its_folder_within_one_cap_that_replay_and_distill_read(tmp_path, rng):
    root = tmp_path / "archive"
    one_file = len(encode_clip(noise(np.random.default_rng(0), 10), SAMPLE_RATE, "flac"))
    config = ArchiveConfig(dir=str(root), minutes_per_hour=60, max_total_mb=2.5 * one_file / MB)
    archive = AudioArchive(config, StreamClock(HOUR), disk_usage=lambda path: PLENTY)
    feeds = {name: archive.feed(name) for name in ("garden", "pond")}
    for minute, name in ((0, "garden"), (1, "pond"), (2, "garden"), (3, "pond")):  # interleaved, as they come
        for block in blocks(noise(rng, 10), source="mic:USB", first=60 * minute * SAMPLE_RATE):
            feeds[name].put_audio(block)
        feeds[name].end_audio()
        archive.work(1.0)
    kept = sorted(path.relative_to(root).as_posix() for path in root.rglob("*.flac"))
    assert kept == ["garden/2027-01-15/mic-USB_20270115_080200.flac", "pond/2027-01-15/mic-USB_20270115_080300.flac"]
    assert archive.counters.deleted_cap == 2  # the oldest two, garden's then pond's: one cap for every source
    assert archive.directory.total_bytes <= config.max_total_mb * MB
    again = directory(root, max_total_mb=config.max_total_mb)  # a restart indexes every source's folder
    assert again.files == 2 and again.total_bytes == archive.directory.total_bytes
    found = find_audio_files([str(root)])  # what birdd replay and birdd distill read, with each file's time
    assert [recording_start(path).timestamp() for path in found] == [HOUR + 120, HOUR + 180]
