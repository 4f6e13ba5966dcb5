"""The confirmation rule (BirdNET-Go's "false positive filter"): a species heard once, below a high confidence, is
not reported until it is heard again.

A detection below ``high_confidence`` opens a *run* of its species lasting ``within`` samples from its window's
start; each later window of that species ending inside the run counts. When the run reaches ``windows`` windows
its first detection is reported (its own window and time; the others of the run are merged into it, counted);
a run that ends short is dropped (counted). A detection at or above ``high_confidence``, or of an exempt species,
is reported at once (and counts towards an open run). Window results leave in order, each once its runs are
decided, so results wait at most ``within`` samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from daemon.filters.stats import FilterStats
from daemon.pipeline.detection import Detection
from daemon.pipeline.scoring import WindowResult


@dataclass
class Run:
    """One species' windows since its first unconfirmed detection."""

    end: int
    """stream sample the run closes at"""
    windows: int = 1
    merged: int = 0
    """later detections of the run, not reported on their own"""
    state: str = "open"
    """"open", "confirmed" or "dropped\""""


class Confirmation:
    """Holds window results until each detection is reported, merged or dropped."""

    def __init__(self, windows: int, within: int, high_confidence: float, exempt: frozenset[str],
                 stats: FilterStats) -> None:
        self._windows = windows
        self._within = within
        self._high = high_confidence
        self._exempt = exempt
        self._stats = stats
        self._runs: dict[str, Run] = {}
        self._held: deque[tuple[WindowResult, list[tuple[Detection, Run | None]]]] = deque()

    def push(self, results: list[WindowResult]) -> list[WindowResult]:
        """Take results in stream order; release those whose detections are all decided."""
        for result in results:
            self._close_runs(before=result.end_sample)
            verdicts: list[tuple[Detection, Run | None]] = []
            for detection in result.detections:
                run = self._runs.get(detection.species_code)
                if run is not None:
                    run.windows += 1
                    if run.windows >= self._windows and run.state == "open":
                        self._decide(run, "confirmed")
                if detection.confidence >= self._high or detection.species_code in self._exempt:
                    verdicts.append((detection, None))
                elif run is not None:
                    run.merged += 1
                    if run.state == "confirmed":
                        self._stats.confirm_merged += 1
                else:
                    run = self._runs[detection.species_code] = Run(result.start_sample + self._within)
                    verdicts.append((detection, run))
                    if self._windows == 1:
                        self._decide(run, "confirmed")
            self._held.append((result, verdicts))
        return self._release()

    def flush(self) -> list[WindowResult]:
        """End of a segment: the open runs end short."""
        self._close_runs(before=None)
        return self._release()

    def _close_runs(self, before: int | None) -> None:
        for code, run in list(self._runs.items()):
            if before is None or before > run.end:
                if run.state == "open":
                    self._decide(run, "dropped")
                del self._runs[code]

    def _decide(self, run: Run, state: str) -> None:
        run.state = state
        if state == "confirmed":
            self._stats.confirm_confirmed += 1
            self._stats.confirm_merged += run.merged
        else:
            self._stats.confirm_dropped += 1 + run.merged

    def _release(self) -> list[WindowResult]:
        out = []
        while self._held and all(run is None or run.state != "open" for _, run in self._held[0][1]):
            result, verdicts = self._held.popleft()
            kept = tuple(d for d, run in verdicts if run is None or run.state == "confirmed")
            out.append(result if kept == result.detections else replace(result, detections=kept))
        return out
