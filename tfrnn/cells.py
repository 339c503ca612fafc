"""Cells with TF1's options, as Keras 3 layers that serialize and export.

* `LSTMCell`: TF1 `rnn_cell.LSTMCell` (peepholes, `cell_clip`, `num_proj`,
  `proj_clip`, `forget_bias`), state `[h, c]`.
* `MultiRNNCell`: a stack whose state has one entry per layer.
* `DropoutWrapper`: input/output/state dropout, per step or variational.

Their state is ordered as Keras's (`[h, c]`), not as TF1's
`LSTMStateTuple(c, h)`; everything else follows TF1.
"""

import keras
import tensorflow as tf

from tfrnn import step


@keras.saving.register_keras_serializable(package="tfrnn")
class LSTMCell(keras.layers.Layer):
    """TF1's `LSTMCell` (Sak et al. 2014 with peepholes and projection).

    ```
    z = x @ kernel + h @ recurrent_kernel + bias  # gates i, f, j, o (Keras order)
    i += w_i * c if use_peepholes;  f += w_f * c if use_peepholes
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(j)
    c' = clip(c', -cell_clip, cell_clip)           if cell_clip
    o += w_o * c' if use_peepholes
    h' = sigmoid(o) * tanh(c')
    h' = clip(h' @ projection, -proj_clip, proj_clip)  if num_proj (clip if set)
    return h', [h', c']
    ```

    The state is `[h, c]`: `h` has `num_proj` units when projecting, `c` always
    `units`. The output is `h`, so a final `h` equals the last output while
    `c` does not (and has another width with `num_proj`).

    Weights, for copying from TF1 (whose kernel is `[x; h] @ W` with gates
    i, j, f, o): `kernel` `[features, 4 units]`, `recurrent_kernel`
    `[num_proj or units, 4 units]`, `bias` `[4 units]` with gates i, f, j, o;
    `peepholes` `[3, units]` (w_i, w_f, w_o), `projection` `[units, num_proj]`.
    """

    def __init__(
        self,
        units,
        use_peepholes=False,
        cell_clip=None,
        num_proj=None,
        proj_clip=None,
        forget_bias=1.0,
        activation="tanh",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units <= 0:
            raise ValueError(f"LSTMCell: units must be positive; got {units}.")
        if num_proj is not None and num_proj <= 0:
            raise ValueError(f"LSTMCell: num_proj must be positive; got {num_proj}.")
        if proj_clip is not None and num_proj is None:
            raise ValueError("LSTMCell: proj_clip needs num_proj.")
        self.units = units
        self.use_peepholes = use_peepholes
        self.cell_clip = cell_clip
        self.num_proj = num_proj
        self.proj_clip = proj_clip
        self.forget_bias = forget_bias
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.output_size = num_proj or units

    @property
    def state_size(self):
        return [self.output_size, self.units]

    def build(self, input_shape):
        features = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, 4 * self.units),
            initializer=self.kernel_initializer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.output_size, 4 * self.units),
            initializer=self.recurrent_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(4 * self.units,), initializer=self.bias_initializer
        )
        if self.use_peepholes:
            self.peepholes = self.add_weight(
                name="peepholes",
                shape=(3, self.units),
                initializer=self.kernel_initializer,
            )
        if self.num_proj:
            self.projection = self.add_weight(
                name="projection",
                shape=(self.units, self.num_proj),
                initializer=self.kernel_initializer,
            )

    def call(self, inputs, states):
        h, c = states
        z = tf.matmul(inputs, self.kernel)
        z += tf.matmul(h, self.recurrent_kernel)
        z = tf.nn.bias_add(z, self.bias)
        i, f, j, o = tf.split(z, 4, axis=-1)
        if self.use_peepholes:
            w_i, w_f, w_o = tf.unstack(self.peepholes)
            i += w_i * c
            f += w_f * c
        c = tf.sigmoid(f + self.forget_bias) * c + tf.sigmoid(i) * self.activation(j)
        if self.cell_clip is not None:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        if self.use_peepholes:
            o += w_o * c
        h = tf.sigmoid(o) * self.activation(c)
        if self.num_proj:
            h = tf.matmul(h, self.projection)
            if self.proj_clip is not None:
                h = tf.clip_by_value(h, -self.proj_clip, self.proj_clip)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_peepholes": self.use_peepholes,
            "cell_clip": self.cell_clip,
            "num_proj": self.num_proj,
            "proj_clip": self.proj_clip,
            "forget_bias": self.forget_bias,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="tfrnn")
class MultiRNNCell(keras.layers.Layer):
    """A stack of cells (TF1 `MultiRNNCell`): each layer reads the one below.

    ```
    x = inputs
    for k, cell in enumerate(cells):
        x, new_state[k] = cell(x, state[k])
    return x, tuple(new_state)
    ```

    The state is a tuple with one entry per layer, each in its cell's own
    structure (`[h, c]` for an LSTM layer). Only the top layer's output is
    the stack's output: a lower layer's final state is not `outputs[:, -1]`.
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not cells:
            raise ValueError("MultiRNNCell: give at least one cell.")
        self.cells = list(cells)
        self.output_size = step.output_size(self.cells[-1])

    @property
    def state_size(self):
        return tuple(cell.state_size for cell in self.cells)

    def get_initial_state(self, batch_size=None):
        return tuple(step.zero_state(cell, batch_size) for cell in self.cells)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for cell in self.cells:
            if not cell.built:
                cell.build(shape)
            shape = shape[:-1] + (step.output_size(cell),)

    def call(self, inputs, states, training=None):
        new_states = []
        for cell, state in zip(self.cells, states):
            inputs, state = step.call_cell(cell, inputs, state, training)
            new_states.append(state)
        return inputs, tuple(new_states)

    def get_config(self):
        return {
            **super().get_config(),
            "cells": [keras.saving.serialize_keras_object(c) for c in self.cells],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cells"] = [
            keras.saving.deserialize_keras_object(c) for c in config["cells"]
        ]
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfrnn")
class DropoutWrapper(keras.layers.Layer):
    """TF1's `DropoutWrapper`: dropout on a cell's input, output and state.

    ```
    x = dropout(x, 1 - input_keep_prob)
    output, new_state = cell(x, state)
    output = dropout(output, 1 - output_keep_prob)
    new_state.h = dropout(new_state.h, 1 - state_keep_prob)
    ```

    Active only with `training=True`: in inference the wrapper is the cell.
    Dropout scales kept units by `1/keep_prob` (inverted dropout), so nothing
    changes at inference. Per-step by default; with `variational_recurrent`
    each sequence draws one mask per tensor and reuses it at every step (Gal
    & Ghahramani 2016). State dropout touches only the cell's first state
    tensor, its `h` (TF1 never drops an LSTM's `c`); wrap single cells, not a
    stack.
    """

    def __init__(
        self,
        cell,
        input_keep_prob=1.0,
        output_keep_prob=1.0,
        state_keep_prob=1.0,
        variational_recurrent=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, keep in (
            ("input_keep_prob", input_keep_prob),
            ("output_keep_prob", output_keep_prob),
            ("state_keep_prob", state_keep_prob),
        ):
            if not 0.0 < keep <= 1.0:
                raise ValueError(
                    f"DropoutWrapper: {name} must be in (0, 1]; got {keep}."
                )
        self.cell = cell
        self.input_keep_prob = input_keep_prob
        self.output_keep_prob = output_keep_prob
        self.state_keep_prob = state_keep_prob
        self.variational_recurrent = variational_recurrent
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.output_size = step.output_size(cell)
        self._masks = None

    @property
    def state_size(self):
        return self.cell.state_size

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(input_shape)

    def draw_dropout_masks(self, step_input, state):
        """Draws this sequence's masks (variational only); the unrolls call it."""
        if not self.variational_recurrent:
            return
        h = tf.nest.flatten(state)[0]
        output = tf.zeros([tf.shape(h)[0], self.output_size], h.dtype)
        self._masks = [
            keras.random.dropout(
                tf.ones_like(like), 1.0 - keep, seed=self.seed_generator
            )
            for like, keep in (
                (step_input, self.input_keep_prob),
                (output, self.output_keep_prob),
                (h, self.state_keep_prob),
            )
        ]

    def forget_dropout_masks(self):
        self._masks = None

    def _dropout(self, x, keep_prob, which):
        if keep_prob == 1.0:
            return x
        if self.variational_recurrent:
            if self._masks is None:
                raise ValueError(
                    "DropoutWrapper(variational_recurrent=True) must run inside "
                    "tfrnn.static_rnn or tfrnn.dynamic_rnn, which draw one mask per "
                    "sequence."
                )
            return x * self._masks[which]
        return keras.random.dropout(x, 1.0 - keep_prob, seed=self.seed_generator)

    def call(self, inputs, states, training=False):
        if training:
            inputs = self._dropout(inputs, self.input_keep_prob, 0)
        output, new_state = step.call_cell(self.cell, inputs, states, training)
        if training:
            output = self._dropout(output, self.output_keep_prob, 1)
            leaves = tf.nest.flatten(new_state)
            leaves[0] = self._dropout(leaves[0], self.state_keep_prob, 2)
            new_state = tf.nest.pack_sequence_as(new_state, leaves)
        return output, new_state

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "input_keep_prob": self.input_keep_prob,
            "output_keep_prob": self.output_keep_prob,
            "state_keep_prob": self.state_keep_prob,
            "variational_recurrent": self.variational_recurrent,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)
