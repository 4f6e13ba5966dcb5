"""The archive: a bounded rolling sample of the station's raw audio, kept for a later ``birdd distill``."""
