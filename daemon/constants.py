"""Constants that every stage agrees on, named once."""

SAMPLE_RATE = 32_000
"""The model's sample rate (hertz); every stage downstream of a source works at this rate."""

WINDOW_SECONDS = 5
"""Length of an analysis window (seconds), as in BirdCLEF."""

BLOCK_SAMPLES = SAMPLE_RATE // 10
"""The 100-ms block: what file replay writes and the pipeline thread reads at a time (keeps latency low)."""

POLL_S = 0.1
"""How long a thread waits on a ring or queue before it checks its stop flag again (seconds)."""
