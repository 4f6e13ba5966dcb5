"""The filters' counters, shared by every filter chain of a daemon (a model reload keeps them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FilterStats:
    """What the filters did since start (``<prefix>/status/stats`` ``filters``, Prometheus ``birdd_filter_*``)."""

    privacy_voices: int = 0
    """windows (human classes) or 32-ms frames (VAD) in which a voice was heard"""
    privacy_dropped: int = 0
    """detections dropped near a voice"""
    noise_windows: int = 0
    """windows in which a noise class was heard"""
    noise_dropped: int = 0
    """detections dropped near a noise"""
    confirm_confirmed: int = 0
    """species runs confirmed (each reported once)"""
    confirm_merged: int = 0
    """detections merged into a confirmed run's first one"""
    confirm_dropped: int = 0
    """detections dropped: their species was not heard again in time"""
    quiet_dropped: int = 0
    """detections dropped in quiet hours (quiet_mode = "detections")"""
    quiet_audio_s: float = 0.0
    """seconds of audio heard in quiet hours"""
    audio_withheld_s: float = 0.0
    """seconds of audio the archive did not keep (voice or quiet hours)"""
