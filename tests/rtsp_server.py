#!/usr/bin/python3
"""An RTSP server for the tests (Debian's gst-rtsp-server through python3-gi; run with the system python3).

``rtsp_server.py PORT WAV [USER PASSWORD] [--tls CERT KEY]`` serves ``WAV`` at ``rtsp://127.0.0.1:PORT/birds``
as L16 mono RTP at 32 kHz, paced at real time, each client from the start of the file; with USER and PASSWORD,
only to a client that gives them (basic auth); with ``--tls``, as ``rtsps://`` (RTSP over TLS with the PEM
certificate and key, to anyone unless USER is given). Prints ``ready`` once listening; ends on SIGTERM.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402

ANONYMOUS = "anonymous"


def main(port: str, wav: str, user: str = "", password: str = "", tls: list[str] | None = None) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{wav}" ! wavparse ! audioconvert ! audioresample '
                       "! audio/x-raw,rate=32000,channels=1 ! rtpL16pay name=pay0 pt=96 )")
    if user or tls:
        auth = GstRtspServer.RTSPAuth()
        role = user or ANONYMOUS
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", role)
        if user:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        else:
            auth.set_default_token(token)  # TLS alone: every client may play
        if tls:
            auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(*tls))
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(role, "media.factory.access", True)
        permissions.add_permission_for_role(role, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/birds", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("wav")
    parser.add_argument("user", nargs="?", default="")
    parser.add_argument("password", nargs="?", default="")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    main(**vars(parser.parse_args()))
