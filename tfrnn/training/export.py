"""What a finished run leaves: a SavedModel (a task's `tf.Module` with its
signatures, and `tfrnn.json`, how it was built) and a `.keras` file, each
written whole or not at all, and read back with errors that name the file.
"""

import os
import pathlib
import shutil
import time
import warnings

import tensorflow as tf

from tfrnn.training import run_dir
from tfrnn.training.errors import RunDirError
from tfrnn.training.errors import one_line

META_FILE = "tfrnn.json"


def directory_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


def load(directory, what_to_do="delete it and export the model again"):
    """The exported module, its `tfrnn.json` as `.meta`.

    Raises `RunDirError` naming the file when the export is missing or
    damaged, followed by `what_to_do`.
    """
    directory = pathlib.Path(directory)
    if not (directory / "saved_model.pb").exists():
        raise RunDirError(
            f"no exported model in {directory}: train one with "
            "`python -m tfrnn.train --model_dir=...` (it exports to MODEL_DIR/export)"
        )
    try:
        module = tf.saved_model.load(str(directory))
    except Exception as error:  # noqa: BLE001 - a damaged protobuf raises anything
        raise RunDirError(
            f"{directory / 'saved_model.pb'} cannot be read "
            f"({one_line(error)}): {what_to_do}"
        ) from None
    module.meta = run_dir.read_json(directory / META_FILE, what_to_do)
    return module


def save_keras(model, path):
    """Saves `model` as a `.keras` file at `path` (atomically: written beside
    it, then renamed); returns `(bytes, seconds)`."""
    path = pathlib.Path(path)
    started = time.perf_counter()
    partial = path.with_name(f".{path.stem}.partial.keras")
    with run_dir.writing(path, partial=partial), warnings.catch_warnings():
        # Keras's own convert_to_numpy warns under numpy 2 (for every Keras
        # model, keras.layers.LSTM's too): not the user's to act on.
        warnings.filterwarnings(
            "ignore", "__array__ implementation", DeprecationWarning
        )
        model.save(partial)
        os.replace(partial, path)
    return path.stat().st_size, time.perf_counter() - started


def save(module, directory, signatures, meta):
    """Saves `module` with `signatures` (`{name: tf.function}`) as a
    SavedModel in `directory`, `meta` beside it; returns `(bytes, seconds)`.

    Written whole or not at all: into a directory beside it, then renamed
    over it (a full disk leaves the one before, if any, and raises
    `run_dir.writing`'s one line)."""
    directory = pathlib.Path(directory)
    started = time.perf_counter()
    partial = directory.with_name(f".{directory.name}.partial")
    replaced = directory.with_name(f".{directory.name}.partial-old")
    for leftover in (partial, replaced):  # of a process killed while exporting
        shutil.rmtree(leftover, ignore_errors=True)
    with run_dir.writing(directory, partial=partial):
        tf.saved_model.save(module, str(partial), signatures=signatures)
        run_dir.write_json(partial / META_FILE, meta)
    if directory.exists():
        directory.rename(replaced)
    partial.rename(directory)
    shutil.rmtree(replaced, ignore_errors=True)
    return directory_bytes(directory), time.perf_counter() - started


def export_run(module, signatures, meta, model, run):
    """Exports a run's model as a SavedModel (`save`) in `run.export` and a
    `.keras` file at `run.keras_model`; returns the report's `export` record."""
    size, seconds = save(module, run.export, signatures, meta)
    keras_bytes, keras_seconds = save_keras(model, run.keras_model)
    return {
        "path": str(run.export),
        "bytes": size,
        "seconds": seconds,
        "keras": {"path": str(run.keras_model), "bytes": keras_bytes, "seconds": keras_seconds},
    }
