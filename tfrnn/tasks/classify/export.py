"""The classifier's SavedModel: a module that reads images or sequences.

Two signatures:
* `classify_images(images)`: uint8 images `[batch, H, W]` (or `[batch, H, W, C]`)
  -> class probabilities, the normalisation (meta "normalize", "unit" when
  absent) and the sequence view (rows, columns, pixels or permuted pixels)
  applied inside the graph, as `data.to_sequences`.
* `classify_sequences(sequences)`: float32 `[batch, T, F]` -> class
  probabilities. A static model refuses any T but the one it was built for;
  a dynamic one accepts any T. Both refuse a wrong feature size, naming the
  expected one.
"""

import numpy as np
import tensorflow as tf

from tfrnn.tasks.classify import data as data_lib
from tfrnn.training import export as export_lib
from tfrnn.training.export import load  # noqa: F401 - the classifier's export is read with it


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
        if self.meta.get("normalize", "unit") == "symmetric":
            x = (x - 0.5) / 0.5
        height, width = self.meta["image_shape"][:2]
        channels = (
            self.meta["image_shape"][2] if len(self.meta["image_shape"]) == 3 else 1
        )
        if self.meta["sequence"] == "rows":
            x = tf.reshape(x, [-1, height, width * channels])
        elif self.meta["sequence"] == "columns":
            x = tf.reshape(x, [-1, height, width, channels])
            x = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, width, height * channels])
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
    """Saves `model` in a `Classifier` with its two signatures; returns
    `(bytes, seconds)`."""
    module = Classifier(model, meta)
    return export_lib.save(module, directory, signatures(module), meta)


def signatures(module):
    """The signatures of a `Classifier`: images (the default) and sequences."""
    return {
        "serving_default": module.classify_images,
        "classify_sequences": module.classify_sequences,
    }


def config_meta(config):
    """The fields of `meta_for` that the run's `Config` alone gives: how the
    model was built, and on which data set and sequence view."""
    return {
        name: getattr(config, name)
        for name in (
            "mode", "unroll", "bidirectional", "cell", "model", "dataset", "sequence",
            "normalize",
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


def export_run(model, config, data, run):
    """Exports a run's classifier (the SavedModel and model.keras of `run`, a
    `RunDir`); returns the report's `export` record."""
    meta = meta_for(config, data)
    module = Classifier(model, meta)
    return export_lib.export_run(module, signatures(module), meta, model, run)
