"""Audio in: file decoding, the microphone and file-replay sources, the ring buffer feeding the pipeline."""
