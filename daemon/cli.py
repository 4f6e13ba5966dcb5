"""The ``birdd`` command line: runtime commands here, trainer commands plugged in by entry points.

The trainer registers ``birdd train`` and ``birdd synth`` under the ``birdd.commands`` entry-point
group, so this package never imports it.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import date, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

import click
import numpy as np

from daemon import __version__
from daemon.atomic import AtomicWriter
from daemon.audio.files import find_audio_files
from daemon.batch.formats import FORMATS
from daemon.batch.recording_time import TimePattern
from daemon.batch.replay import SEGMENT_MINUTES, CascadeSpec, pool_runner
from daemon.config import DEFAULT_SCREEN_THRESHOLD, Config, FiltersConfig, config_from_dict, load_config
from daemon.errors import BirddError, ConfigError
from daemon.logsetup import setup_logging
from daemon.model.loader import Model, load_model
from daemon.model.teacher_evidence import named, never_found
from daemon.model.windows import BIRDNET_MAX_OVERLAP_S
from daemon.pipeline.cascade import check_cascade, load_teacher

log = logging.getLogger(__name__)


def place_options(required: bool) -> Callable[[Callable], Callable]:
    """``--lat --lon [--week N | --date D] [--threshold T]``: a place and a week for BirdNET's range model."""
    def decorate(command: Callable) -> Callable:
        options = [
            click.option("--lat", type=click.FloatRange(-90, 90), required=required,
                         help="Latitude, degrees north" + ("" if required else " (turns the range filter on)")),
            click.option("--lon", type=click.FloatRange(-180, 180), required=required,
                         help="Longitude, degrees east."),
            click.option("--week", type=click.IntRange(-1, 48), default=None,
                         help="BirdNET week, 1..48 (four per month), or -1 for the whole year [default: -1]."),
            click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
                         help="Date whose week to use (YYYY-MM-DD), instead of --week."),
            click.option("--range-threshold" if not required else "--threshold", "threshold",
                         type=click.FloatRange(0, 1), default=0.03, show_default=True,
                         help="Occurrence score a species needs (BirdNET-Analyzer's sf_thresh)."),
        ]
        return functools.reduce(lambda f, option: option(f), reversed(options), command)
    return decorate


def chosen_week(week: int | None, day: datetime | date | None) -> int:
    """The BirdNET week of ``--week`` or ``--date`` (-1, the whole year, when neither is given)."""
    from daemon.model.range_filter import YEAR_ROUND, week_of

    if week is not None and day is not None:
        raise click.UsageError("give --week or --date, not both")
    if week == 0:
        raise click.BadParameter("0 is not a week: 1..48, or -1 for the whole year", param_hint="--week")
    return week_of(day) if day is not None else YEAR_ROUND if week is None else week


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
              help="Output file (.parquet for Parquet; a folder for --format audacity: one label file per recording).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="submission", show_default=True)
@click.option("--min-conf", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Smallest confidence listed (detections, raven, audacity).")
@click.option("--hop", type=click.IntRange(1, 5), default=5, show_default=True,
              help="Seconds between window starts (5 = BirdCLEF's non-overlapping windows).")
@click.option("--grid", type=click.Choice(("birdclef", "birdnet")), default="birdclef", show_default=True,
              help="birdclef: 5-s windows --hop apart; birdnet: BirdNET-Analyzer's 3-s chunks (TFLite BirdNET bundles; "
                   "BirdNET's confidences, as birdnetlib computes them).")
@click.option("--overlap", type=click.FloatRange(0, BIRDNET_MAX_OVERLAP_S), default=0.0, show_default=True,
              help="--grid birdnet: overlap of consecutive 3-s chunks (seconds).")
@click.option("--sensitivity", type=click.FloatRange(0.5, 1.5), default=1.0, show_default=True,
              help="--grid birdnet: BirdNET's detection sensitivity.")
@click.option("--cascade", "cascade_path", type=click.Path(path_type=Path), default=None, metavar="TEACHER",
              help="A student/teacher cascade: the TFLite bundle TEACHER re-scores the windows the model flags "
                   "(docs/distill.md, \"A cascade\").")
@click.option("--screen-threshold", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_SCREEN_THRESHOLD,
              show_default=True, help="--cascade: a window whose best score from the model reaches this goes to "
                                      "the teacher.")
@click.option("-j", "--jobs", type=click.IntRange(0), default=0, help="Worker processes (0 = one per core).")
@click.option("--segment-minutes", type=click.FloatRange(min=1), default=SEGMENT_MINUTES, show_default=True,
              help="Long recordings are cut into segments of this length, scored in parallel.")
@click.option("--time-pattern", default=None,
              help="strptime pattern of the recording start in file names, e.g. 'site3-%Y-%m-%d_%H%M' "
                   "(default: GUANO, AudioMoth comment, AudioMoth / Song Meter names).")
@click.option("--resume", is_flag=True, help="Journal finished files next to OUT and continue an interrupted run.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS|local",
              help="Run on a Dask cluster (tcp://host:8786, or 'local' for a LocalCluster); needs birdd[dask].")
@click.option("--parts", is_flag=True,
              help="The workers write the rows as Parquet parts into the folder OUT (shared storage), nothing "
                   "gathered; --format submission or detections.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("-c", "--config", "config_path", default=None, type=click.Path(path_type=Path),
              help="A birdd config: its [filters] apply as the daemon applies them, on the detections of its "
                   "[detection] (threshold, unless --min-conf; species thresholds; include/exclude) (docs/filters.md).")
@click.option("--filter", "filter_names", multiple=True, type=click.Choice(("privacy", "noise", "confirm")),
              help="Switch a filter on (repeatable; its [filters] settings, or the defaults).")
@click.option("--quiet-hours", multiple=True, metavar="HH:MM-HH:MM",
              help="Quiet hours, local time (filters.quiet_timezone; repeatable); needs the recording's start (its "
                   "name, metadata or --time-pattern).")
@place_options(required=False)
def replay(paths: tuple[Path, ...], model_path: Path, output: Path, fmt: str, min_conf: float, hop: int, grid: str,
           overlap: float, sensitivity: float, cascade_path: Path | None, screen_threshold: float, jobs: int,
           segment_minutes: float, time_pattern: str | None,
           resume: bool, dask_address: str | None, parts: bool, progress: bool | None, config_path: Path | None,
           filter_names: tuple[str, ...], quiet_hours: tuple[str, ...], lat: float | None,
           lon: float | None, week: int | None, day: datetime | None,
           threshold: float) -> None:
    """Score recordings (files or folders, recursive) into a submission CSV or detection tables.

    One row per 5-s window, named <file stem>_<end second>; a trailing partial window of 2.5 s or more
    is scored and named by its nominal end (a 63-s file ends with _65); a shorter tail is dropped.
    Detection tables get ISO 8601 start/end times when a recording's start is known.
    With --grid birdnet (a TFLite BirdNET bundle), rows are BirdNET's 3-s chunks, --overlap apart, scored as
    birdnetlib scores them (--format birdnet writes BirdNET-Analyzer's CSV).
    With --lat/--lon, BirdNET's range filter applies: species not expected there in that week (--week or
    --date, default the whole year) score 0 in the submission and are left out of detection tables.
    With --config's [filters], --filter or --quiet-hours, each file is scored as the daemon scores it (its 32 kHz
    stream, its [detection], --min-conf as its threshold) through the daemon's filters; what they did is logged at
    the end.
    With --cascade TEACHER, a window whose best score reaches --screen-threshold is scored again by TEACHER
    and carries its scores (species TEACHER does not know keep the model's); not with filters.
    """
    from daemon.batch.run import ReplayOptions, replay_into_parts, run_replay

    config = load_config(config_path) if config_path is not None else None
    filters = _replay_filters(config, filter_names, quiet_hours)
    detection = config.detection if config is not None and filters is not None else None
    if detection is not None and click.get_current_context().get_parameter_source("min_conf") \
            == click.core.ParameterSource.DEFAULT:
        min_conf = detection.threshold  # the daemon's threshold, unless --min-conf says otherwise
    options = ReplayOptions(fmt, min_conf, hop, segment_minutes * 60, time_pattern, grid, overlap, sensitivity,
                            filters, detection)
    if time_pattern:
        TimePattern(time_pattern)  # a bad pattern fails before the model loads
    if cascade_path is not None and filters is not None:
        raise click.UsageError("--cascade cannot be combined with filters (--config's [filters], --filter, "
                               "--quiet-hours) yet")
    model = load_model(model_path)
    if cascade_path is not None:
        teacher = load_teacher(str(cascade_path), key="--cascade")
        check_cascade(teacher, model, options.window_grid(model), "--cascade")
        options = replace(options, cascade=CascadeSpec(str(teacher.path), teacher.digest, screen_threshold))
    in_range = _range_mask(model, lat, lon, week, day, threshold)
    files = find_audio_files(list(paths))
    if not files:
        raise BirddError(f"no audio files under {', '.join(map(str, paths))}")
    if dask_address:
        from daemon.batch.dask_runner import dask_runner

        runner = dask_runner(dask_address, jobs)
    else:
        runner = pool_runner(model, jobs)
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    summary = (replay_into_parts if parts else run_replay)(model, files, output, options, runner, resume, show,
                                                           in_range)
    elapsed = time.perf_counter() - started
    log.info("scored %d files (%.1f min of audio) in %.1f s (%.0fx real time) -> %s", summary.scored,
             summary.audio_seconds / 60, elapsed, summary.audio_seconds / max(elapsed, 1e-9), output)
    if summary.filters is not None:
        log.info("filters: %s", " ".join(f"{key}={value:g}" for key, value in asdict(summary.filters).items()))
    if summary.failed:
        click.echo(f"birdd: {len(summary.failed)} file(s) could not be read:", err=True)
        for message in summary.failed:
            click.echo(f"  {message}", err=True)
        sys.exit(1)


def _replay_filters(config: Config | None, names: tuple[str, ...], quiet_hours: tuple[str, ...]) \
        -> FiltersConfig | None:
    """``[filters]`` of ``config`` (or the defaults) with the ``--filter`` and ``--quiet-hours`` flags, validated
    as the daemon validates them; None when no filter is on."""
    table = asdict(config.filters if config is not None else FiltersConfig())
    table.update({name: True for name in names})
    if quiet_hours:
        table["quiet_hours"] = list(quiet_hours)
    filters = config_from_dict({"filters": table}).filters
    return filters if filters.privacy or filters.noise or filters.confirm or filters.quiet_hours else None


def _range_mask(model: Model, lat: float | None, lon: float | None, week: int | None, day: datetime | None,
                threshold: float) -> np.ndarray | None:
    """The bundle species BirdNET's range model expects at ``lat, lon`` that week (None without a place)."""
    if (lat is None) != (lon is None):
        raise click.UsageError("--lat and --lon go together")
    if lat is None:
        if week is not None or day is not None:
            raise click.UsageError("--week and --date need --lat and --lon (the range filter's place)")
        return None
    from daemon.model.range_filter import RangeFilter, StationRange

    station = StationRange(RangeFilter.open(model.path), model.species, lat, lon, threshold)
    return station.for_week(chosen_week(week, day))


@cli.command()
@place_options(required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the list to this file (default: standard output).")
def species(lat: float, lon: float, week: int | None, day: datetime | None, threshold: float,
            output: Path | None) -> None:
    """List the species BirdNET's range model expects at a place and week, best first.

    One line per species: its BirdNET label (Scientific name_Common name), a tab and its occurrence
    score, as BirdNET-Analyzer's species command keeps them (score >= --threshold). The output is a
    species list that detection.include accepts (docs/stations.md).
    """
    from daemon.model.range_filter import RangeFilter

    chosen = chosen_week(week, day)
    expected = RangeFilter.open().expected(lat, lon, chosen, threshold)
    text = (f"# birdd species --lat {lat:g} --lon {lon:g} --week {chosen} --threshold {threshold:g}: "
            f"{len(expected)} species\n" + "".join(f"{s.line()}\n" for s in expected))
    if output is None:
        click.echo(text, nl=False)
        return
    writer = AtomicWriter(output)
    writer.write(text)
    writer.commit()
    log.info("%d species expected at %g, %g in week %d -> %s", len(expected), lat, lon, chosen, output)


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


CONFIG_OPTION = click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
                             help="TOML configuration (see config.toml).")


def _run_configured(config_path: Path, runner: Callable[[Config], int]) -> NoReturn:
    """Load the configuration, set logging up from it, run ``runner`` and exit with its status."""
    config = load_config(config_path)
    setup_logging(config.logging.level)
    try:
        status = runner(config)
    except ConfigError as exc:  # found at start-up (a species list, the range model, ...): name the file too
        raise ConfigError(f"{config_path}: {exc}") from None
    sys.exit(status)


@cli.command()
@CONFIG_OPTION
def run(config_path: Path) -> None:
    """Run the detector daemon: listen, detect, publish over MQTT (stops on SIGTERM, reloads the model on SIGHUP)."""
    from daemon.service.service import run_service

    _run_configured(config_path, run_service)


@cli.command()
@CONFIG_OPTION
def web(config_path: Path) -> None:
    """Serve the page and the BirdNET-Go-compatible /api/v2 from the detection store, read-only (docs/web.md)."""
    from daemon.web.server import run_web

    _run_configured(config_path, run_web)


@cli.command("export-reviews")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path),
              help="The detection store (store.path), or the folder holding its detections.sqlite.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Dataset folder to write (new or empty).")
@click.option("--precision", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="Threshold suggestions keep at least this precision on the reviewed detections.")
@click.option("--min-reviews", type=click.IntRange(1), default=5, show_default=True,
              help="Reviews a species needs before a threshold is suggested for it.")
def export_reviews(store_path: Path, output: Path, precision: float, min_reviews: int) -> None:
    """Write the reviewed detections as a labelled dataset for `birdd train` / `birdd distill --reviews`, and
    per-species threshold suggestions (OUT/thresholds.toml) (docs/review.md)."""
    from daemon.reviews.export import export_reviews as export

    summary = export(store_path, output, precision, min_reviews)
    click.echo(f"{output}: {summary.correct} correct and {summary.false_positive} false-positive clip(s), "
               f"{summary.species} species in taxonomy.csv"
               + (f"; {summary.without_audio} review(s) without a clip left out" if summary.without_audio else ""))
    click.echo(f"species\tcorrect\tfalse_pos\tthreshold\tprecision (>= {precision:g} wanted)")
    for s in summary.suggestions:
        shown = (f"{s.threshold:g}\t{s.precision if s.precision is not None else '-'}" if s.threshold is not None
                 else f"-\tfewer than {min_reviews} reviews")
        click.echo(f"{s.species_code}\t{s.correct}\t{s.false_positive}\t{shown}")
    click.echo(f"thresholds written to {output / 'thresholds.toml'}")


@cli.command()
@click.option("--lat", type=click.FloatRange(-90, 90), help="The station's latitude, degrees north.")
@click.option("--lon", type=click.FloatRange(-180, 180), help="The station's longitude, degrees east.")
@click.option("--station", "name", default="birdd", show_default=True, help="Station name (MQTT topics, payloads).")
@click.option("--mic", default="", help="Substring of the input device's name (default: the default input).")
@click.option("--url", default="", help="A network stream (rtsp://, http://) instead of a microphone.")
@click.option("--broker", default="localhost:1883", show_default=True, help="MQTT broker, HOST:PORT.")
@click.option("--web-port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="The page's port.")
@click.option("--web-bind", default="127.0.0.1", show_default=True,
              help="Address the page listens on (0.0.0.0: every interface).")
@click.option("--model", "model_path", default="", help="Use this bundle instead of making BirdNET's all-classes one.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("/"), show_default=True,
              help="Install under this folder (/etc, /var/lib and the unit folder below it; systemd offline).")
@click.option("--dry-run", is_flag=True, help="Print every change (files with a diff, commands); change nothing.")
@click.option("--skip-checks", is_flag=True, help="Do not check the broker, microphone, stream or model (offline).")
@click.option("--force", is_flag=True, help="Replace files changed since setup wrote them (or not written by it).")
@click.option("--uninstall", is_flag=True, help="Remove what setup added (recorded in its manifest).")
@click.option("--purge", is_flag=True, help="With --uninstall: also remove the station's data (/var/lib/birdd).")
def setup(lat: float | None, lon: float | None, name: str, mic: str, url: str, broker: str, web_port: int,
          web_bind: str, model_path: str, root: Path, dry_run: bool, skip_checks: bool, force: bool,
          uninstall: bool, purge: bool) -> None:
    """Install a station in one command: config, systemd units, the all-classes BirdNET model, checks,
    services enabled and started (docs/stations.md). Idempotent; --uninstall removes what it added."""
    from daemon.install.config_text import Station
    from daemon.install.layout import Layout
    from daemon.install.setup import install, parse_broker
    from daemon.install.setup import uninstall as remove

    layout = Layout.under(root)
    if uninstall:
        return remove(layout, purge=purge, dry_run=dry_run, say=click.echo)
    if purge:
        raise click.UsageError("--purge goes with --uninstall")
    if lat is None or lon is None:
        raise click.UsageError("--lat and --lon are required (the station's place, for BirdNET's range filter)")
    if mic and url:
        raise click.UsageError("give --mic or --url, not both")
    host, port = parse_broker(broker)
    station = Station(name, lat, lon, mic, url, host, port, web_bind, web_port,
                      str(Path(model_path).absolute()) if model_path else "")
    install(station, layout, dry_run=dry_run, skip_checks=skip_checks, force=force, say=click.echo)


@cli.command()
@click.argument("model_path", type=click.Path(path_type=Path))
def info(model_path: Path) -> None:
    """Describe a model bundle (verifies its checksums)."""
    model = load_model(model_path)
    m = model.manifest
    click.echo(f"model    {model.path} ({m.get('name')}, {model.backend.name}, version {model.digest})")
    click.echo(f"created  {m.get('created')} by birdd {m.get('package_version')}")
    click.echo(f"species  {len(model.species)}")
    training = m.get("training_data")
    for key, value in (training.items() if isinstance(training, dict) else ()):
        click.echo(f"training {key}: {value}")
    distillation = m.get("distillation")
    if isinstance(distillation, dict):
        _describe_distillation(distillation)


def _describe_distillation(distillation: dict) -> None:
    """A student's teacher, the species its teacher never found in the audio, lowest peak first (the student
    knows them poorly), and its held-out check."""
    teacher = distillation.get("teacher")
    if isinstance(teacher, dict):
        click.echo(f"teacher  {teacher.get('name')} (manifest sha256 {teacher.get('manifest_sha256')})")
    evidence = distillation.get("teacher_evidence")
    species = evidence.get("species") if isinstance(evidence, dict) else None
    if isinstance(species, dict) and species:
        missing = never_found(species)
        click.echo(f"evidence {len(species) - len(missing)} of {len(species)} species reach {evidence.get('found_at')} "
                   f"in some window of the audio" + (f"; never: {named(missing)}" if missing else ""))
    check = distillation.get("check")
    if isinstance(check, dict):
        heard = check.get("species")
        where = f"{check.get('held_out_files')} held-out recording(s), {check.get('windows')} windows"
        if isinstance(check.get("fidelity"), int | float):
            click.echo(f"check    fidelity {check['fidelity']} to the teacher on {where}, "
                       f"{len(heard) if isinstance(heard, dict) else '?'} species")
        else:
            click.echo(f"check    no fidelity: on {where}, the teacher hears no learnt species in some and not others")


def _register_plugins() -> None:
    for entry in entry_points(group="birdd.commands"):
        try:
            cli.add_command(entry.load(), entry.name)
        except ImportError as exc:  # e.g. the trainer's extras are not installed
            log.debug("command %s unavailable: %s", entry.name, exc)


def _command_word(argv: list[str]) -> str | None:
    """The sub-command named on the command line (None if none), skipping the group's options."""
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Console-script entry point."""
    if _command_word(sys.argv[1:]) not in cli.commands:  # a plugin command or help: load the plugins (heavy)
        _register_plugins()
    cli(prog_name="birdd")
