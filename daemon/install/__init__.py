"""``birdd setup``: a station installed in one command, and removed by another.

By job: :mod:`layout` (where each file goes, under ``--root``), :mod:`config_text` (the station's
``config.toml``), :mod:`units` (the systemd units, adjusted to the paths), :mod:`checks` (microphone,
stream, broker, model), :mod:`systemd` (``systemctl`` calls), :mod:`manifest` (what setup added),
:mod:`plan` (the changes, printed or applied) and :mod:`setup` (which changes an install or an
uninstall needs).
"""
