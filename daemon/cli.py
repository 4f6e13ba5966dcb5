"""The ``birdd`` command line: runtime commands here, trainer commands plugged in by entry points.

The trainer registers ``birdd train`` and ``birdd synth`` under the ``birdd.commands`` entry-point
group, so this package never imports it.
"""

from __future__ import annotations

import logging
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import click
from tqdm import tqdm

from daemon import __version__
from daemon.audio.files import SAMPLE_RATE, find_audio_files
from daemon.batch.formats import (
    DETECTIONS_HEADER,
    FORMATS,
    RAVEN_HEADER,
    AtomicWriter,
    RavenTable,
    audacity_labels,
    detection_rows,
    submission_header,
    submission_rows,
)
from daemon.batch.replay import replay_files
from daemon.errors import BirddError
from daemon.logsetup import setup_logging
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid

log = logging.getLogger("birdd")


class BirddGroup(click.Group):
    """A click group that reports :class:`BirddError` as one line and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BirddError as exc:
            click.echo(f"birdd: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=BirddGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="birdd")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """birdd: listen to birds on a small CPU box."""
    setup_logging(log_level)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_path", required=True, type=click.Path(path_type=Path), help="Model bundle.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output file (a folder for --format audacity: one label file per recording).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="submission", show_default=True)
@click.option("--min-conf", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Smallest confidence listed (detections, raven, audacity).")
@click.option("--hop", type=click.IntRange(1, 5), default=5, show_default=True,
              help="Seconds between window starts (5 = BirdCLEF's non-overlapping windows).")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, help="Worker processes (0 = one per core).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def replay(paths: tuple[Path, ...], model_path: Path, output: Path, fmt: str, min_conf: float, hop: int, jobs: int,
           progress: bool | None) -> None:
    """Score recordings (files or folders, recursive) into a submission CSV or detection tables.

    One row per 5-s window, named <file stem>_<end second>; a trailing partial window of 2.5 s or more
    is scored and named by its nominal end (a 63-s file ends with _65); a shorter tail is dropped.
    """
    model = load_model(model_path)
    files = find_audio_files(list(paths))
    if not files:
        raise BirddError(f"no audio files under {', '.join(map(str, paths))}")
    grid = WindowGrid.with_hop_seconds(hop)
    writer = None if fmt == "audacity" else AtomicWriter(output)
    raven = RavenTable(min_conf)
    if writer:
        writer.write({"submission": submission_header(model.species), "detections": DETECTIONS_HEADER,
                      "raven": RAVEN_HEADER}[fmt])
    failed: list[str] = []
    started = time.perf_counter()
    audio_seconds = 0.0
    show = sys.stderr.isatty() if progress is None else progress
    try:
        results = replay_files(model, files, grid, jobs)
        for path, result in tqdm(results, total=len(files), desc="replay", unit="file", disable=not show):
            if isinstance(result, str):
                log.error("skipped: %s", result)
                failed.append(result)
                continue
            audio_seconds += float(result.ends[-1]) / SAMPLE_RATE if len(result.ends) else 0.0
            if fmt == "submission":
                writer.write(submission_rows(result))
            elif fmt == "detections":
                writer.write(detection_rows(result, model.species, min_conf))
            elif fmt == "raven":
                writer.write(raven.rows(result, model.species))
            else:
                labels = AtomicWriter(output / f"{path.stem}.txt")
                labels.write(audacity_labels(result, model.species, min_conf))
                labels.commit()
    except BaseException:
        if writer:
            writer.discard()
        raise
    if writer:
        writer.commit()
    elapsed = time.perf_counter() - started
    log.info("scored %d files (%.1f min of audio) in %.1f s (%.0fx real time) -> %s", len(files) - len(failed),
             audio_seconds / 60, elapsed, audio_seconds / max(elapsed, 1e-9), output)
    if failed:
        click.echo(f"birdd: {len(failed)} file(s) could not be read:", err=True)
        for message in failed:
            click.echo(f"  {message}", err=True)
        sys.exit(1)


@cli.command("eval")
@click.argument("submission", type=click.Path(path_type=Path))
@click.argument("labels", type=click.Path(path_type=Path))
@click.option("--per-species", is_flag=True, help="Also print each species' ROC-AUC (worst first).")
def evaluate(submission: Path, labels: Path, per_species: bool) -> None:
    """Score a submission CSV against labels: macro ROC-AUC over species with a positive label."""
    from daemon.batch.evaluate import score_submission

    score, by_species = score_submission(submission, labels)
    if per_species:
        for code, auc in sorted(by_species.items(), key=lambda kv: kv[1]):
            click.echo(f"{code}\t{auc:.4f}")
    click.echo(f"macro ROC-AUC {score:.4f} over {len(by_species)} species")


@cli.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="TOML configuration (see config.toml).")
def run(config_path: Path) -> None:
    """Run the detector daemon: listen, detect, publish over MQTT (stops on SIGTERM, reloads the model on SIGHUP)."""
    from daemon.config import load_config
    from daemon.service.service import run_service

    config = load_config(config_path)
    setup_logging(config.logging.level)
    sys.exit(run_service(config))


@cli.command()
@click.argument("model_path", type=click.Path(path_type=Path))
def info(model_path: Path) -> None:
    """Describe a model bundle (verifies its checksums)."""
    model = load_model(model_path)
    m = model.manifest
    click.echo(f"model    {model.path} ({m.get('name')}, {model.backend.name}, version {model.digest})")
    click.echo(f"created  {m.get('created')} by birdd {m.get('package_version')}")
    click.echo(f"species  {len(model.species)}")
    for key, value in m.get("training_data", {}).items():
        click.echo(f"training {key}: {value}")


def _register_plugins() -> None:
    for entry in entry_points(group="birdd.commands"):
        try:
            cli.add_command(entry.load(), entry.name)
        except ImportError as exc:  # e.g. the trainer's extras are not installed
            log.debug("command %s unavailable: %s", entry.name, exc)


def main() -> None:
    """Console-script entry point."""
    _register_plugins()
    cli(prog_name="birdd")
