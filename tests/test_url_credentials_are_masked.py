"""mask_credentials: the one helper between a stream URL's user:password@ and every log line, event and payload."""

from __future__ import annotations

import pytest

from daemon.audio.credentials import mask_credentials
from daemon.audio.ffmpeg_child import ffmpeg_command, is_file_input


@pytest.mark.parametrize("text, expected", [
    ("rtsp://admin:pa55@10.0.0.5:554/s1", "rtsp://***@10.0.0.5:554/s1"),
    ("rtsps://u:p%40ss@cam/x and http://v:w@host/", "rtsps://***@cam/x and http://***@host/"),
    ("http://only-user@host/mount", "http://***@host/mount"),
    ("https://host/path@2x.m3u8", "https://host/path@2x.m3u8"),  # an @ in the path is no credential
    ("/var/lib/birdd/in.wav", "/var/lib/birdd/in.wav"),
    ("rtsp://[::1]:8554/birds", "rtsp://[::1]:8554/birds"),
])
def test_credentials_in_urls_are_masked(text, expected):
    assert mask_credentials(text) == expected


def test_the_configured_password_is_masked_outside_a_url_too():
    url = "rtsp://cam:p%40ssw0rd@192.0.2.1/live"
    message = "[rtsp] auth p@ssw0rd refused; p%40ssw0rd; rtsp://cam:p%40ssw0rd@192.0.2.1/live"
    masked = mask_credentials(message, url)
    assert "p@ssw0rd" not in masked and "p%40ssw0rd" not in masked and "rtsp://***@192.0.2.1/live" in masked


def test_ffmpeg_reads_files_at_real_time_and_rtsp_over_the_chosen_transport():
    assert is_file_input("/x/a.flac") and is_file_input("file:/x/a.flac") and not is_file_input("http://h/a")
    assert "-re" in ffmpeg_command("/x/a.flac") and "-re" not in ffmpeg_command("http://h/a")
    rtsp = ffmpeg_command("rtsp://h/s", rtsp_transport="udp")
    assert rtsp[rtsp.index("-rtsp_transport") + 1] == "udp"
    rtsps = ffmpeg_command("rtsps://u:p@h/s")  # RTSP over TLS: the same options, no TLS one (nothing verifies)
    assert rtsps[rtsps.index("-rtsp_transport") + 1] == "tcp" and not [o for o in rtsps if "tls" in o]
    assert rtsp[-7:] == ["-ac", "1", "-ar", "32000", "-f", "f32le", "pipe:1"]
