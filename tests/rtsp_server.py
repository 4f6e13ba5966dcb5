#!/usr/bin/python3
"""An RTSP server for the tests (Debian's gst-rtsp-server through python3-gi; run with the system python3).

``rtsp_server.py PORT WAV [USER PASSWORD]`` serves ``WAV`` at ``rtsp://127.0.0.1:PORT/birds`` as L16 mono
RTP at 32 kHz, paced at real time, each client from the start of the file; with USER and PASSWORD, only
to a client that gives them (basic auth). Prints ``ready`` once listening; ends on SIGTERM.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(port: str, wav: str, user: str = "", password: str = "") -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{wav}" ! wavparse ! audioconvert ! audioresample '
                       "! audio/x-raw,rate=32000,channels=1 ! rtpL16pay name=pay0 pt=96 )")
    if user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(user, "media.factory.access", True)
        permissions.add_permission_for_role(user, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/birds", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main(*sys.argv[1:])
