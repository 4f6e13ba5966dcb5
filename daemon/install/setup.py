"""Which changes an install or an uninstall needs, and carrying them out (or only printing them)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from daemon.audio.credentials import mask_credentials
from daemon.errors import SetupError
from daemon.install import checks
from daemon.install.config_text import Station, config_text
from daemon.install.layout import UNITS, Layout
from daemon.install.manifest import Manifest, read_manifest, relative, sha256
from daemon.install.plan import Change, MakeDir, Remove, RemoveDir, Run, WriteFile, empty_after, exists
from daemon.install.systemd import Systemctl
from daemon.install.units import birdd_executable, unit_text

FILE_MODE = 0o644
DIR_MODES = {"config_dir": 0o755, "unit_dir": 0o755, "private_dir": 0o700, "state_dir": 0o700}
"""the directories setup makes when they are missing, parents first, and their modes"""


def run_checks(station: Station) -> list[str]:
    """Check the broker, the input and a given model; what was found, one line each."""
    checks.check_broker(station.broker_host, station.broker_port)
    found = [f"broker {station.broker_host}:{station.broker_port}: MQTT connection accepted"]
    if station.url:
        checks.check_stream(station.url)
        found.append(f"stream {mask_credentials(station.url, station.url)}: reachable")
    else:
        found.append(f"microphone {checks.check_microphone(station.mic)!r}: opens and gives audio")
    if station.model:
        checks.check_model(station.model)
        found.append(f"model {station.model}: loads")
    return found


def _write(layout: Layout, manifest: Manifest, path: Path, text: str, force: bool) -> WriteFile | None:
    """The change that gives ``path`` this text (None if it has it, or if setup wrote this text there before:
    a hand edit since is kept); a file changed by someone else is not replaced unless ``force``."""
    previous = path.read_text() if path.is_file() else None
    name = relative(layout, path)
    if previous == text or (previous is not None and manifest.files.get(name) == sha256(text) and not force):
        return None
    if previous is not None and not force and not manifest.owns_unchanged(layout, name):
        who = "changed since birdd setup wrote it" if name in manifest.files else "not written by birdd setup"
        raise SetupError(f"{path}: {who}; --force replaces it")
    return WriteFile(path, text, FILE_MODE, previous)


def install_plan(station: Station, layout: Layout, force: bool = False) -> tuple[list[Change], list[str]]:
    """The changes that install ``station`` under ``layout`` (none when it is installed as asked), and notes."""
    old = read_manifest(layout)
    new = Manifest(dict(old.files), list(old.dirs), old.model, list(old.enabled))
    plan: list[Change] = []
    notes: list[str] = []
    for attribute, mode in DIR_MODES.items():
        path = getattr(layout, attribute)
        made = {change.path for change in plan}
        for missing in reversed([p for p in (path, *path.parents) if not exists(p) and p not in made]):
            plan.append(MakeDir(missing, mode if missing == path else 0o755))
            new.dirs.append(relative(layout, missing))
    dirs_made = len(plan)
    birdd = birdd_executable()
    texts = {layout.unit(name): unit_text(name, layout, birdd) for name in UNITS}
    texts[layout.config] = config_text(station, layout)
    writes = [w for path, text in texts.items() if (w := _write(layout, old, path, text, force))]
    plan += writes
    new.files.update({relative(layout, path): sha256(text) for path, text in texts.items()})

    if station.model:
        notes.append(f"model: {station.model} (given)")
    elif (layout.model_dir / "manifest.json").is_file():
        notes.append(f"model: {layout.model_dir} (exists, kept)")
    else:
        plan.append(Run((str(birdd), "train", "--backend", "tflite", "--zero-shot", "-o", str(layout.model_dir)),
                        "make the all-classes BirdNET model"))
        new.model = relative(layout, layout.model_dir)

    systemctl = Systemctl(layout)
    units_changed = any(w.path != layout.config for w in writes)
    if units_changed and systemctl.running:
        plan.append(Run(tuple(systemctl.command("daemon-reload")), "reload systemd's units"))
    to_enable = [u for u in UNITS if not systemctl.is_enabled(u)]
    if to_enable:
        if not exists(layout.wants_dir):
            new.dirs.append(relative(layout, layout.wants_dir))
        plan.append(Run(tuple(systemctl.command("enable", *to_enable)), "enable at boot"))
        new.enabled += [u for u in to_enable if u not in new.enabled]
    if systemctl.running:
        stopped = [u for u in UNITS if not systemctl.is_active(u)]
        restart = [u for u in UNITS if u not in stopped] if writes else []
        if stopped:
            plan.append(Run(tuple(systemctl.command("start", *stopped)), "start"))
        if restart:
            plan.append(Run(tuple(systemctl.command("restart", *restart)), "restart with the new files"))
    else:
        notes.append("systemd is not running here (a chroot, a container, or --root): the units are enabled, "
                     "not started")
    previous = layout.manifest.read_text() if layout.manifest.is_file() else None
    if new.text() != previous:  # written before the files it lists, so a failed step can still be undone
        plan.insert(dirs_made, WriteFile(layout.manifest, new.text(), FILE_MODE, previous))
    return plan, notes


def uninstall_plan(layout: Layout, purge: bool = False) -> tuple[list[Change], list[str]]:
    """The changes that remove what setup added under ``layout`` (and, with ``purge``, the station's data)."""
    manifest = read_manifest(layout)
    if not layout.manifest.is_file():
        raise SetupError(f"{layout.manifest}: not found, so birdd setup installed nothing under {layout.root}")
    plan: list[Change] = []
    notes: list[str] = []
    removed: set[Path] = set()
    systemctl = Systemctl(layout)
    installed = [u for u in UNITS if layout.unit(u).exists()]
    if installed:
        stop = ["--now"] if systemctl.running else []
        plan.append(Run(tuple(systemctl.command("disable", *stop, *installed)), "stop and disable"))
        removed |= {layout.wants_dir / u for u in installed}
    for name in manifest.files:
        path = layout.path(name)
        if not exists(path):
            continue
        if purge or manifest.owns_unchanged(layout, name):
            plan.append(Remove(path))
            removed.add(path)
        else:
            notes.append(f"kept {path}: changed since birdd setup wrote it (--purge removes it)")
    if installed and systemctl.running:
        plan.append(Run(tuple(systemctl.command("daemon-reload")), "reload systemd's units"))
    if manifest.model and exists(layout.path(manifest.model)) and not purge:
        plan.append(Remove(layout.path(manifest.model), "the model setup made"))
        removed.add(layout.path(manifest.model))
    if purge:
        for data in (layout.state_link, layout.state_dir):
            if exists(data):
                plan.append(Remove(data, "the station's data: --purge"))
                removed.add(data)
    plan.append(Remove(layout.manifest))
    removed.add(layout.manifest)
    kept: set[Path] = set()
    for path in sorted({layout.path(d) for d in manifest.dirs}, key=lambda p: len(p.parts), reverse=True):
        if not exists(path) or path in removed:
            continue
        if empty_after(path, removed):
            plan.append(RemoveDir(path))
            removed.add(path)
            continue
        kept.add(path)
        if not any(k.parent == path for k in kept):  # say it once, at the deepest folder kept
            notes.append(f"kept {path}: it holds data (--purge removes it)" if path == layout.state_dir
                         else f"kept {path}: it holds files setup did not add")
    return plan, notes


def carry_out(plan: list[Change], dry_run: bool, say: Callable[[str], None]) -> None:
    """Apply ``plan`` in order, saying each change (or, with ``dry_run``, only say them, in full)."""
    for change in plan:
        say(("would " if dry_run else "") + change.describe(detailed=dry_run))
        if not dry_run:
            try:
                change.apply()
            except OSError as exc:
                raise SetupError(f"{change.describe(detailed=False)}: {exc.strerror or exc}") from None


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 1883; ``[::1]:1883`` for IPv6) -> (host, port)."""
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon or "]" in port:
        host, port = text, "1883"
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SetupError(f"--broker {text}: expected HOST:PORT, e.g. localhost:1883")
    return host, int(port)


def _need_root(layout: Layout, dry_run: bool) -> None:
    if layout.is_system and not dry_run and os.geteuid() != 0:
        raise SetupError("installing into / needs root: sudo birdd setup ... (or --dry-run, or --root DIR)")


def install(station: Station, layout: Layout, *, dry_run: bool, skip_checks: bool, force: bool,
            say: Callable[[str], None]) -> None:
    """Check, then install ``station`` (or say what would change); say the page's address."""
    _need_root(layout, dry_run)
    if skip_checks:
        say("checks skipped (--skip-checks)")
    else:
        for line in run_checks(station):
            say(f"ok: {line}")
    plan, notes = install_plan(station, layout, force)
    carry_out(plan, dry_run, say)
    for note in notes:
        say(note)
    if not plan:
        say(f"nothing to change: birdd is installed as asked under {layout.root}")
    elif dry_run:
        say(f"dry run: {len(plan)} change(s) listed, none made")
    say(f"the page: {station.page_address}   (detections on MQTT: birdd/{station.name}/#)")


def uninstall(layout: Layout, *, purge: bool, dry_run: bool, say: Callable[[str], None]) -> None:
    """Remove what setup added under ``layout`` (or say what would be removed)."""
    _need_root(layout, dry_run)
    plan, notes = uninstall_plan(layout, purge)
    carry_out(plan, dry_run, say)
    for note in notes:
        say(note)
    say(f"dry run: {len(plan)} change(s) listed, none made" if dry_run else f"birdd removed from {layout.root}")
