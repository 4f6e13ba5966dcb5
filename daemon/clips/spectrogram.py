"""A clip's spectrogram as PNG bytes: the daemon's own log-mel front end, a perceptual colour map, axes.

The image is drawn with Pillow (no plotting library on the station): one column per log-mel frame
(10 ms), ``ROW_PIXELS`` rows per mel band, low frequencies at the bottom, the viridis colour map
from each band's median level over the clip (its background, so a steady low rumble does not drown the calls) to
the loudest cell above it (at most ``DYNAMIC_RANGE``), a frequency axis in kHz (mel-spaced, as the
bands are) and a time axis in seconds from the clip's start. Tick marks under the axis show where
the detection's window begins and ends. Saved as an 8-bit palette PNG.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from daemon.model.features import FrontEndParams, hz_to_mel, logmel_frames

ROW_PIXELS = 3
"""image rows per mel band"""
DYNAMIC_RANGE = 8.0 * np.log(10.0)
"""widest span of levels shown above the background: 80 dB, in the front end's natural-log power units"""
FREQUENCY_TICKS_KHZ = (1, 2, 4, 8, 12)
LEFT, BOTTOM, TOP, RIGHT = 30, 18, 8, 14
"""margins around the image (pixels): frequency labels left, time labels below"""
AXIS_COLOUR = (40, 40, 40)
WINDOW_MARK_COLOUR = (200, 60, 40)
VIRIDIS_ANCHORS = np.array([
    (68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139), (51, 99, 141), (44, 114, 142),
    (38, 130, 142), (33, 145, 140), (31, 160, 136), (40, 174, 128), (63, 188, 115), (94, 201, 98),
    (132, 212, 75), (173, 220, 48), (216, 226, 25), (253, 231, 37)], dtype=np.float64)
"""matplotlib's viridis (perceptually uniform, readable in grey and by colour-blind eyes) at 17 even steps"""


LEVELS = 253
"""palette entries for levels; the last three of the 256 are the background, the axes and the window marks"""
WHITE, AXIS, MARK = LEVELS, LEVELS + 1, LEVELS + 2


@lru_cache(maxsize=1)
def palette() -> list[int]:
    """The 256 RGB entries, flat as ``Image.putpalette`` wants: viridis levels, then white, axes, marks."""
    steps = np.linspace(0, len(VIRIDIS_ANCHORS) - 1, LEVELS)
    table = [np.interp(steps, np.arange(len(VIRIDIS_ANCHORS)), VIRIDIS_ANCHORS[:, c]) for c in range(3)]
    levels = np.rint(np.stack(table, axis=1)).astype(np.uint8).ravel().tolist()
    return [*levels, 255, 255, 255, *AXIS_COLOUR, *WINDOW_MARK_COLOUR]


def render_spectrogram(samples: np.ndarray, params: FrontEndParams, window: tuple[float, float] | None = None
                       ) -> bytes:
    """PNG of the log-mel spectrogram of ``samples``; ``window`` = (start, end) seconds from the clip start."""
    logmel = logmel_frames(samples, params)  # (frames, mels)
    if logmel.shape[0] == 0:
        logmel = np.zeros((1, params.n_mels), dtype=np.float32)
    above_background = logmel - np.median(logmel, axis=0)  # each band against its own background
    top = min(float(above_background.max()), DYNAMIC_RANGE)
    levels = np.clip(above_background / max(top, 1e-6), 0.0, 1.0)
    cells = np.rint(levels.T[::-1] * (LEVELS - 1)).astype(np.uint8)  # rows = mel bands, highest first
    cells = np.repeat(cells, ROW_PIXELS, axis=0)
    height, width = cells.shape
    canvas = np.full((TOP + height + BOTTOM, LEFT + width + RIGHT), WHITE, dtype=np.uint8)
    canvas[TOP:TOP + height, LEFT:LEFT + width] = cells
    image = Image.fromarray(canvas)
    image.putpalette(palette())  # "L" becomes "P": the values are the palette indices
    _draw_axes(ImageDraw.Draw(image), params, width, height, window)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _draw_axes(draw: ImageDraw.ImageDraw, params: FrontEndParams, width: int, height: int,
               window: tuple[float, float] | None) -> None:
    axis, mark = AXIS, MARK
    font = ImageFont.load_default()
    bottom = TOP + height
    draw.line([(LEFT - 1, TOP), (LEFT - 1, bottom), (LEFT + width, bottom)], fill=axis)
    low, high = hz_to_mel(params.fmin), hz_to_mel(params.fmax)
    for khz in FREQUENCY_TICKS_KHZ:
        if not params.fmin <= khz * 1000 <= params.fmax:
            continue
        y = bottom - round(float((hz_to_mel(khz * 1000.0) - low) / (high - low)) * height)
        draw.line([(LEFT - 4, y), (LEFT - 1, y)], fill=axis)
        draw.text((LEFT - 6, y), str(khz), fill=axis, font=font, anchor="rm")
    draw.text((LEFT - 6, bottom + 4), "kHz", fill=axis, font=font, anchor="rt")
    frames_per_second = params.sample_rate / params.hop
    for second in range(int(width / frames_per_second) + 1):
        x = LEFT + round(second * frames_per_second)
        draw.line([(x, bottom), (x, bottom + 3)], fill=axis)
        draw.text((x, bottom + 4), str(second), fill=axis, font=font, anchor="mt")
    draw.text((LEFT + width + RIGHT - 1, bottom + 4), "s", fill=axis, font=font, anchor="rt")
    for seconds in window or ():
        x = LEFT + round(seconds * frames_per_second)
        draw.line([(x, bottom + 1), (x, bottom + 6)], fill=mark, width=2)
