"""The confirmation rule: a single spurious window is dropped, a repeated species is reported once (its first
window), a high-confidence one at once; counted."""

from __future__ import annotations

from filter_fixtures import SPECIES, reported, run, windows

from daemon.config import FiltersConfig
from daemon.filters.chain import build_filters
from daemon.filters.stats import FilterStats
from daemon.pipeline.detection import StreamClock


def chain(stats: FilterStats, **keys: object):
    return build_filters(FiltersConfig(confirm=True, **keys), SPECIES, StreamClock(0.0), stats, None)


def test_a_single_window_is_dropped_and_a_repeated_species_reported_once_at_its_first_window():
    stats = FilterStats()
    results = windows([{"tawowl1": 0.6}, {}, {}, {"eurbla": 0.6}, {"eurbla": 0.7}, {"eurbla": 0.55}, {}, {}, {}])
    out = run(chain(stats, confirm_windows=2, confirm_within_s=15.0), results)
    assert reported(out) == [(3, "eurbla")]
    assert out[3].detections == results[3].detections  # the first window's own detection: its time and id
    assert (stats.confirm_confirmed, stats.confirm_merged, stats.confirm_dropped) == (1, 2, 1)


def test_a_species_heard_again_too_late_is_dropped_both_times():
    stats = FilterStats()
    out = run(chain(stats, confirm_windows=2, confirm_within_s=10.0), windows([{"eurbla": 0.6}, {}, {"eurbla": 0.6}]))
    assert reported(out) == [] and stats.confirm_dropped == 2


def test_high_confidence_and_exempt_species_are_reported_at_once():
    stats = FilterStats()
    results = windows([{"eurbla": 0.9}, {}, {"tawowl1": 0.6}, {}, {}, {}])
    out = run(chain(stats, confirm_high_confidence=0.8, confirm_exempt=["Strix aluco"]), results)
    assert reported(out) == [(0, "eurbla"), (2, "tawowl1")]
    assert stats.confirm_dropped == 0


def test_a_result_waits_only_until_its_run_is_decided():
    c = chain(FilterStats(), confirm_windows=2, confirm_within_s=15.0)
    results = windows([{"eurbla": 0.6}, {"eurbla": 0.6}, {}])
    assert c.push(results[:1]) == []  # undecided: held
    released = c.push(results[1:2])  # confirmed by the second window: both leave, the second merged
    assert reported(released) == [(0, "eurbla")]
    assert c.push(results[2:]) == results[2:]
