"""RNN classifiers: a tfrnn unroll, its last output, a dense softmax layer."""

import keras
import tensorflow as tf

from tfrnn import cells
from tfrnn.dynamic import dynamic_rnn
from tfrnn.config import CELLS
from tfrnn.config import MODELS
from tfrnn.config import MODES
from tfrnn.static import static_rnn


def make_cell(cell, units, layers=1):
    """A cell by name; `layers > 1` stacks them in a `tfrnn.MultiRNNCell`."""
    makers = {
        "rnn": lambda: keras.layers.SimpleRNNCell(units),
        "gru": lambda: keras.layers.GRUCell(units),
        "lstm": lambda: cells.LSTMCell(units),
        "peephole_lstm": lambda: cells.LSTMCell(units, use_peepholes=True),
    }
    if cell not in makers:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    if layers < 1:
        raise ValueError(f"layers must be >= 1; got {layers}")
    if layers == 1:
        return makers[cell]()
    return cells.MultiRNNCell([makers[cell]() for _ in range(layers)])


@keras.saving.register_keras_serializable(package="tfrnn")
class Recurrent(keras.layers.Layer):
    """A Keras layer that runs `cell` with `tfrnn.static_rnn` or `dynamic_rnn`.

    Takes `[batch, time, features]`, returns the last step's output
    `[batch, output_size]` (the sequences it reads are unpadded). `static`
    needs the time dimension known when the model is built; `dynamic` takes
    any length.
    """

    def __init__(self, cell, mode="dynamic", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.cell = cell
        self.mode = mode

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(tuple(input_shape[:1]) + tuple(input_shape[2:]))

    def call(self, inputs, training=None):
        unroll = static_rnn if self.mode == "static" else dynamic_rnn
        last_output, _ = unroll(
            self.cell, inputs, return_sequences=False, training=training
        )
        return last_output

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.cell.output_size)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "mode": self.mode,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def build_classifier(
    mode="dynamic",
    cell="lstm",
    units=128,
    layers=1,
    num_classes=10,
    time_steps=28,
    features=28,
    model="rnn",
):
    """A Keras classifier of `[batch, time_steps, features]` sequences.

    `model="rnn"`: the recurrence over the sequence, its last output, a dense
    softmax layer. `model="cnn_rnn"`: the sequence read as an image
    `[time_steps, features]`, two 3x3 convolution + 2x2 pooling blocks, and
    the rows of the feature map (`time_steps / 4` steps of
    `features / 4 * 32` values) read by the recurrence.

    A `static` model has its time dimension fixed at `time_steps`; a `dynamic`
    one accepts any length (`cnn_rnn` keeps the image size fixed).
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
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = Recurrent(make_cell(cell, units, layers), mode, name=f"{mode}_rnn")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=f"{mode}_{cell}_{model}")


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
    )


def count_parameters(model):
    return int(sum(tf.size(v).numpy() for v in model.trainable_variables))
