"""A clip job waits until the ring holds the margin after its window, then is written at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from clip_fixtures import WINDOW, Station
from conftest import detection_payload

from daemon.audio.ring import RingBuffer
from daemon.clips.schedule import ClipSchedule
from daemon.constants import SAMPLE_RATE
from daemon.pipeline.detection import Detection
from daemon.store.writer import epoch_of, local_date_time


def planned_job(station: Station, index: int):
    detection = Detection(**detection_payload(index))
    local_date, local_time = local_date_time(epoch_of(detection.end))
    files = station.recorder.plan(detection, local_date, local_time)
    row_id, _ = station.store.add(detection, files)
    return station.recorder.job(row_id, files, detection, local_date, index * WINDOW, (index + 1) * WINDOW)


def test_the_job_is_written_once_the_margin_after_the_window_is_in(tmp_path: Path):
    station = Station(tmp_path, np.random.default_rng(3), seconds=10, margin_s=1.0)  # the first 10 s are in
    schedule = ClipSchedule(station.recorder, station.ring)
    schedule.submit(planned_job(station, 1))  # window 1 ends at 10 s: its margin is not there yet
    schedule.work(0.2)
    assert schedule.pending() == 1 and station.files_on_disk() == {}
    station.ring.write(np.zeros(SAMPLE_RATE, dtype=np.float32))  # the margin arrives
    schedule.work(0.2)
    assert schedule.pending() == 0 and len(station.files_on_disk()) == 2


def test_drain_writes_what_is_queued_with_the_audio_there_is(tmp_path: Path):
    station = Station(tmp_path, np.random.default_rng(4), seconds=10)
    schedule = ClipSchedule(station.recorder, station.ring)
    schedule.submit(planned_job(station, 1))  # needs 11 s of audio, the ring has 10 s: the margin is silence
    assert schedule.drain(time.monotonic() + 5.0) == 0
    assert len(station.files_on_disk()) == 2


def test_a_waiting_producer_keeps_the_first_window_before_any_window_is_seen(tmp_path: Path):
    station = Station(tmp_path, np.random.default_rng(5), seconds=1)
    ring = RingBuffer(WINDOW)
    ClipSchedule(station.recorder, ring)
    ring.write(np.zeros(WINDOW, dtype=np.float32))
    assert ring.read(WINDOW, timeout=0)[0] == 0  # the pipeline has read the first window, the sinks not yet
    assert not ring.wait_for_space(1, timeout=0)  # a file replayed as fast as it goes waits: sample 0 is kept
