"""Trainer commands, registered into ``birdd`` through the ``birdd.commands`` entry points."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from daemon.pooling import FEATURE_BLOCKS
from trainer.recipe import Recipe


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Model bundle folder to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (training is deterministic for it).")
@click.option("--codebook-size", type=click.IntRange(2), default=None, help="Number of tokens (k-means centroids).")
@click.option("--pooling", default=None,
              help=f"Comma-separated window features, from: {', '.join(FEATURE_BLOCKS)}.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def train(data_dir: Path, output: Path, seed: int, codebook_size: int | None, pooling: str | None,
          progress: bool | None) -> None:
    """Train an STSG model from a BirdCLEF-style dataset (taxonomy.csv, train.csv, train_audio/, train_soundscapes/)."""
    from trainer.train import train as run_training

    recipe = Recipe(seed=seed)
    if codebook_size:
        recipe = replace(recipe, tokenizer=replace(recipe.tokenizer, codebook_size=codebook_size))
    if pooling:
        blocks = tuple(b.strip() for b in pooling.split(",") if b.strip())
        unknown = [b for b in blocks if b not in FEATURE_BLOCKS]
        if unknown:
            raise click.BadParameter(f"unknown feature block(s) {', '.join(unknown)}", param_hint="--pooling")
        recipe = replace(recipe, pooling=blocks)
    run_training(data_dir, output, recipe, progress=sys.stderr.isatty() if progress is None else progress)


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
