"""Audio clips of detections and their spectrograms, within a disk budget."""
