"""RNN classifiers: a `tfrnn.RNN` layer (or two, `Bidirectional`), its last
output, a dense softmax layer."""

import keras

from tfrnn.tasks.classify.config import Config
from tfrnn.training.models import make_cell
from tfrnn.training.models import recurrence

MODELS = Config.CHOICES["model"]
MODES = Config.CHOICES["mode"]


def build_classifier(
    mode="dynamic",
    cell="lstm",
    units=128,
    layers=1,
    num_classes=10,
    time_steps=28,
    features=28,
    model="rnn",
    unroll=1,
    bidirectional=False,
    precision="float32",
    kernel="auto",
):
    """A Keras classifier of `[batch, time_steps, features]` sequences.

    `model="rnn"`: the recurrence (a `tfrnn.RNN` layer named "rnn") over the
    sequence, its last output, a dense softmax layer named "classes". `model="cnn_rnn"`: the sequence read as an image
    `[time_steps, features]`, two 3x3 convolution + 2x2 pooling blocks, and
    the rows of the feature map (`time_steps / 4` steps of
    `features / 4 * 32` values) read by the recurrence.

    A `static` model has its time dimension fixed at `time_steps`; a `dynamic`
    one accepts any length (`cnn_rnn` keeps the image size fixed) and runs
    `unroll` steps per iteration of its while loop (`tfrnn.RNN(unroll=k)`).
    `bidirectional`: `keras.layers.Bidirectional` over the layer, the last
    outputs of both directions concatenated (`2 * units` values).
    `precision`: the Keras dtype policy of every layer but the last ("float32"
    or "mixed_bfloat16": float32 weights, bfloat16 computations); the softmax
    layer computes in float32 always. `kernel`: the dynamic recurrence's
    (`tfrnn.RNN(kernel=...)`).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if units < 1 or num_classes < 2:
        raise ValueError("units must be >= 1 and num_classes >= 2")
    free_time = mode == "dynamic" and model == "rnn"
    inputs = keras.Input(
        (None if free_time else time_steps, features), name="sequences"
    )
    x = inputs
    if model == "cnn_rnn":
        x = keras.layers.Reshape((time_steps, features, 1))(x)
        for filters in (16, 32):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", dtype=precision
            )(x)
            x = keras.layers.MaxPooling2D(2, dtype=precision)(x)
        x = keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = recurrence(
        make_cell(cell, units, layers, dtype=precision),
        mode,
        unroll,
        bidirectional,
        dtype=precision,
        kernel=kernel,
    )(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="classes", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=f"{mode}_{cell}_{model}")


def classifier_for(config, num_classes, time_steps, features):
    """`build_classifier` as `config` (a `tfrnn.tasks.classify.config.Config`) says, for data
    of `num_classes` classes read as `[batch, time_steps, features]`."""
    return build_classifier(
        mode=config.mode,
        cell=config.cell,
        units=config.units,
        layers=config.layers,
        num_classes=num_classes,
        time_steps=time_steps,
        features=features,
        model=config.model,
        unroll=config.unroll,
        bidirectional=config.bidirectional,
        precision=config.precision,
        kernel=config.kernel,
    )
