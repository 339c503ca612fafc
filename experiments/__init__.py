"""tfrnn experiments: `python -m experiments.NAME`, results in experiments/results."""

import pathlib
import sys

from absl import app
from absl import logging


def result_paths(output, quick, **stems):
    """`{kind: OUTPUT/STEM[-quick].KIND}` for each `kind=STEM` given."""
    suffix = "-quick" if quick else ""
    return {
        kind: pathlib.Path(output) / f"{stem}{suffix}.{kind}"
        for kind, stem in stems.items()
    }


def settings_from_flags(argv, settings, quick, **values):
    """`settings(quick, **values)` for an experiment's `main`.

    Stray arguments raise absl's UsageError; a bad value exits with the
    message `settings` raised (before TensorFlow is imported).
    """
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    try:
        return settings(quick, **values)
    except ValueError as error:
        sys.exit(f"error: {error}")
