"""Export a trained classifier as a SavedModel that reads images or sequences.

Two signatures:
* `classify_images(images)`: uint8 images `[batch, H, W]` (or `[batch, H, W, C]`)
  -> class probabilities, the sequence view (rows, pixels or permuted pixels)
  applied inside the graph.
* `classify_sequences(sequences)`: float32 `[batch, T, F]` -> class
  probabilities. A static model refuses any T but the one it was built for;
  a dynamic one accepts any T. Both refuse a wrong feature size, naming the
  expected one.
"""

import os
import pathlib
import time
import warnings

import numpy as np
import tensorflow as tf

from tfrnn import data as data_lib
from tfrnn import run_dir
from tfrnn.errors import RunDirError
from tfrnn.errors import one_line

META_FILE = "tfrnn.json"


class Classifier(tf.Module):
    """The exported module; `meta` says how the model was built and trained."""

    def __init__(self, model, meta):
        super().__init__()
        self.model = model
        self.meta = meta
        self._permutation = tf.constant(
            data_lib.pixel_permutation(
                int(np.prod(meta["image_shape"][:2])), meta["permutation_seed"]
            ),
            tf.int32,
        )
        image_spec = tf.TensorSpec(
            [None, *meta["image_shape"]], tf.uint8, name="images"
        )
        self.classify_images = tf.function(
            self._classify_images, input_signature=[image_spec]
        )
        self.classify_sequences = tf.function(
            self._classify_sequences,
            input_signature=[
                tf.TensorSpec([None, None, None], tf.float32, name="sequences")
            ],
        )

    def _classify_images(self, images):
        x = tf.cast(images, tf.float32) / 255.0
        height, width = self.meta["image_shape"][:2]
        channels = (
            self.meta["image_shape"][2] if len(self.meta["image_shape"]) == 3 else 1
        )
        if self.meta["sequence"] == "rows":
            x = tf.reshape(x, [-1, height, width * channels])
        else:
            x = tf.reshape(x, [-1, height * width, channels])
            if self.meta["sequence"] == "permuted":
                x = tf.gather(x, self._permutation, axis=1)
        return self._classify_sequences(x)

    def _classify_sequences(self, sequences):
        time_steps, features = self.meta["time_steps"], self.meta["features"]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(sequences)[2],
                features,
                message=f"this model reads {features} features per step: feed "
                f"[batch, time, {features}] sequences",
            )
        ]
        if self.meta["mode"] == "static":
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(sequences)[1],
                    time_steps,
                    message=f"this static model was built for T={time_steps} time "
                    f"steps and takes no other length: feed [batch, {time_steps}, "
                    f"{features}] sequences, or train with --mode=dynamic for any T",
                )
            )
        with tf.control_dependencies(checks):
            sequences = tf.identity(sequences)
        static_time = time_steps if self.meta["mode"] == "static" else None
        sequences = tf.ensure_shape(sequences, [None, static_time, features])
        return self.model(sequences, training=False)


def export(model, directory, meta):
    """Saves `model` with the two signatures; returns `(bytes, seconds)`."""
    directory = pathlib.Path(directory)
    started = time.perf_counter()
    module = Classifier(model, meta)
    tf.saved_model.save(
        module,
        str(directory),
        signatures={
            "serving_default": module.classify_images,
            "classify_sequences": module.classify_sequences,
        },
    )
    run_dir.write_json(directory / META_FILE, meta)
    return directory_bytes(directory), time.perf_counter() - started


def directory_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


def load(directory, what_to_do="delete it and export the model again"):
    """The exported module (call `.classify_images` / `.classify_sequences`).

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


def config_meta(config):
    """The fields of `meta_for` that the run's `Config` alone gives: how the
    model was built, and on which data set and sequence view."""
    return {
        name: getattr(config, name)
        for name in (
            "mode", "unroll", "bidirectional", "cell", "model", "dataset", "sequence"
        )
    }


def meta_for(config, data):
    """What an exported model needs to know about its training data."""
    return {
        **config_meta(config),
        "time_steps": data.time_steps,
        "features": data.features,
        "num_classes": data.num_classes,
        "image_shape": list(data.image_shape),
        "permutation_seed": 0,
    }


def save_keras(model, path):
    """Saves `model` as a `.keras` file at `path` (atomically: written beside
    it, then renamed); returns `(bytes, seconds)`."""
    path = pathlib.Path(path)
    started = time.perf_counter()
    partial = path.with_name(f".{path.stem}.partial.keras")
    with warnings.catch_warnings():
        # Keras's own convert_to_numpy warns under numpy 2 (for every Keras
        # model, keras.layers.LSTM's too): not the user's to act on.
        warnings.filterwarnings(
            "ignore", "__array__ implementation", DeprecationWarning
        )
        model.save(partial)
    os.replace(partial, path)
    return path.stat().st_size, time.perf_counter() - started


def export_run(model, config, data, directory, keras_path):
    """Exports a run's model as a SavedModel in `directory` and a `.keras`
    file at `keras_path`; returns the report's `export` record."""
    size, seconds = export(model, directory, meta_for(config, data))
    keras_bytes, keras_seconds = save_keras(model, keras_path)
    return {
        "path": str(directory),
        "bytes": size,
        "seconds": seconds,
        "keras": {"path": str(keras_path), "bytes": keras_bytes, "seconds": keras_seconds},
    }
