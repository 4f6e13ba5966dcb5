"""``birdd distill``, registered into ``birdd`` through the ``birdd.commands`` entry points."""

from __future__ import annotations

import logging
import resource
import sys
from datetime import datetime
from pathlib import Path

import click

from daemon.cli import chosen_week, place_options
from daemon.logsetup import progress_logging, setup_logging
from trainer.cli import check_pooling, set_changes, with_changes

log = logging.getLogger("trainer.cli")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--teacher", required=True, type=click.Path(path_type=Path),
              help="Teacher: a TFLite model bundle (`birdd train --backend tflite [--zero-shot]`).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Student bundle folder to write.")
@click.option("--include", type=click.Path(path_type=Path), default=None,
              help="Species list file (codes, scientific names or `birdd species` output): learn these species "
                   "[default: every species of a teacher over a species list; of one over all its model's classes, "
                   "those it finds in the audio, see teacher.species_floor].")
@click.option("--species-from-teacher-range", "from_range", is_flag=True,
              help="Learn the teacher species BirdNET's range model expects at --lat/--lon (--week/--date).")
@place_options(required=False)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (deterministic for it).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any distillation recipe field by its dotted name, e.g. teacher.temperature=2 or "
                   "student.head.l2=1e-3 (repeatable; fields in docs/distill.md).")
@click.option("--check", type=click.FloatRange(0, 0.5, min_open=True), default=None, metavar="SHARE",
              help="First fit a student on all but this share of the recordings (e.g. 0.2) and measure how closely it "
                   "follows the teacher on them (recorded in the manifest; about doubles the time).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Teacher score cache folder (default: $XDG_CACHE_HOME/birdd/teacher_scores).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the teacher score cache.")
@click.option("--reviews", type=click.Path(path_type=Path), default=None,
              help="reviews.csv of `birdd export-reviews`: reviewed clips get the reviewer's target for their species "
                   "(1 correct, 0 false positive) in place of the teacher's (give its folder as a PATH too).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr, one per phase: files or windows done, of how many, and the time left "
                   "(default: when stderr is a terminal and not --quiet).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and only warnings and errors in the log.")
def distill(paths: tuple[Path, ...], teacher: Path, output: Path, include: Path | None, from_range: bool,
            lat: float | None, lon: float | None, week: int | None, day: datetime | None, threshold: float,
            seed: int, overrides: tuple[str, ...], check: float | None, cache_dir: Path | None, no_cache: bool,
            reviews: Path | None, progress: bool | None, quiet: bool) -> None:
    """Distil a TFLite teacher into a token (STSG) student on unlabelled audio.

    PATHS are audio files or folders (recursive, any length; no labels). The teacher scores every window;
    the student learns its scores (docs/distill.md).
    """
    from trainer.distill import RangePlace, SpeciesChoice
    from trainer.distill import distill as distill_student
    from trainer.distill_recipe import DistillRecipe
    from trainer.teacher import default_teacher_cache_dir

    if cache_dir and no_cache:
        raise click.UsageError("--cache-dir and --no-cache contradict each other")
    if include and from_range:
        raise click.UsageError("--include and --species-from-teacher-range are two ways to choose the species: "
                               "give one")
    if from_range != (lat is not None and lon is not None) or (lat is None) != (lon is None):
        raise click.UsageError("--species-from-teacher-range needs --lat and --lon, and they need it")
    if (week is not None or day is not None) and not from_range:
        raise click.UsageError("--week and --date need --species-from-teacher-range")
    place = RangePlace(lat, lon, chosen_week(week, day), threshold) if from_range else None
    recipe = with_changes(DistillRecipe(), [("--seed", "student.seed", str(seed)), *set_changes(overrides)])
    check_pooling(recipe.student.pooling, "--set student.pooling")
    cache = None if no_cache else cache_dir or default_teacher_cache_dir()
    if quiet:
        setup_logging("WARNING")
    show_progress = (sys.stderr.isatty() and not quiet) if progress is None else progress
    with progress_logging(show_progress):
        distill_student(list(paths), teacher, output, recipe, SpeciesChoice(include, place), cache, show_progress,
                        check or 0.0, reviews)
    log.info("peak memory (RSS) %.0f MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
