"""A sink that writes one log line per detection (journald keeps them)."""

from __future__ import annotations

import logging

from daemon.pipeline.detection import Detection

log = logging.getLogger(__name__)


class LogSink:
    """Logs ``detection <code> <confidence> at <end> (<source>)`` at INFO."""

    def put(self, detection: Detection) -> None:
        """Log one detection."""
        log.info("detection %s %.2f at %s (%s)", detection.species_code, detection.confidence, detection.end,
                 detection.source)

    def close(self) -> None:
        """Nothing to release."""
