"""RNN classifiers: a `tfrnn.RNN` layer (or two, `Bidirectional`), its last
output, a dense softmax layer."""

import keras
import tensorflow as tf

from tfrnn import cells
from tfrnn.config import CELLS
from tfrnn.config import MODELS
from tfrnn.config import MODES
from tfrnn.layer import RNN


def make_cell(cell, units, layers=1, dtype=None):
    """A cell by name; `layers > 1` stacks them in a `tfrnn.MultiRNNCell`.
    `dtype`: the cells' Keras dtype policy (e.g. "mixed_bfloat16")."""
    makers = {
        "rnn": lambda: keras.layers.SimpleRNNCell(units, dtype=dtype),
        "gru": lambda: keras.layers.GRUCell(units, dtype=dtype),
        "lstm": lambda: cells.LSTMCell(units, dtype=dtype),
        "peephole_lstm": lambda: cells.LSTMCell(
            units, use_peepholes=True, dtype=dtype
        ),
    }
    if cell not in makers:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    if layers < 1:
        raise ValueError(f"layers must be >= 1; got {layers}")
    if layers == 1:
        return makers[cell]()
    return cells.MultiRNNCell([makers[cell]() for _ in range(layers)], dtype=dtype)


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
    layer computes in float32 always.
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
    )(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="classes", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=f"{mode}_{cell}_{model}")


def recurrence(cell, mode="dynamic", unroll=1, bidirectional=False, dtype=None):
    """The classifier's recurrent layer, named "rnn": `tfrnn.RNN` returning
    each row's last output, in `Bidirectional` when asked."""
    if mode != "dynamic" and unroll != 1:
        raise ValueError(
            f"unroll={unroll} applies to mode='dynamic' (static is k = T); "
            "use mode='dynamic' or unroll=1"
        )
    if mode == "static":
        layer_unroll = "static"
    else:
        layer_unroll = "dynamic" if unroll == 1 else unroll
    if not bidirectional:
        return RNN(cell, unroll=layer_unroll, name="rnn", dtype=dtype)
    return keras.layers.Bidirectional(
        RNN(cell, unroll=layer_unroll, dtype=dtype), name="rnn", dtype=dtype
    )


def recurrent_layers(model):
    """The `tfrnn.RNN` layers of a classifier's "rnn" layer: `[forward]`, or
    `[forward, backward]` when it is bidirectional."""
    layer = model.get_layer("rnn")
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def classifier_for(config, num_classes, time_steps, features):
    """`build_classifier` as `config` (a `tfrnn.config.Config`) says, for data
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
    )


def count_parameters(model):
    return int(sum(tf.size(v).numpy() for v in model.trainable_variables))
