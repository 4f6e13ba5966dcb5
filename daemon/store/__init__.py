"""The detection store: every detection kept in SQLite (written by the daemon, read by ``birdd web``)."""
