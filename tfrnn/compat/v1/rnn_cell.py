"""TF1's `tf.compat.v1.nn.rnn_cell`: cells with TF1's math, state types and names.

Each cell is TF1's, operation for operation (tf-keras's
`legacy_cells.py`, the code behind `tf.compat.v1.nn.rnn_cell` in TF 2.x), so
outputs, states and gradients equal TF1's for the same weights. Variables
(under the cell's scope, e.g. `rnn/basic_lstm_cell/`) and states:

* `BasicRNNCell`: `kernel [F+U, U]`, `bias`; state `h`.
* `BasicLSTMCell`: `kernel [F+U, 4U]` (gates i, j, f, o), `bias`; state
  `LSTMStateTuple(c, h)`.
* `LSTMCell`: as `BasicLSTMCell`, and `w_f_diag`, `w_i_diag`, `w_o_diag`,
  `projection/kernel`; state `LSTMStateTuple(c, h)` (h `num_proj` wide).
* `GRUCell`: `gates/kernel [F+U, 2U]` (r, u), `gates/bias`,
  `candidate/kernel [F+U, U]`, `candidate/bias`; state `h`.

Variables are created on a cell's first call (or by `tfrnn.compat.v1.nn`'s
functions before their loop), in a TF1 variable scope named as TF1 names it:
`<enclosing scope>/<snake_case class name>` (`basic_lstm_cell`,
`basic_lstm_cell_1` for a second one in the same scope). In a
`tf.compat.v1` graph they are made by `tf.compat.v1.get_variable`, so
`variable_scope(reuse=...)`, scope initializers and `tf.compat.v1.train.Saver`
work as in TF1; eagerly and in `tf.function` each cell owns its variables.

`RNNCell` and `LSTMStateTuple` are defined in `rnn_cell_base`, and
`MultiRNNCell`, `DropoutWrapper` and `ResidualWrapper` in `wrappers`; this
module gathers them with the cells.
"""

import keras
import tensorflow as tf

from tfrnn.compat.v1.rnn_cell_base import LSTMStateTuple
from tfrnn.compat.v1.rnn_cell_base import RNNCell
from tfrnn.compat.v1.wrappers import DropoutWrapper
from tfrnn.compat.v1.wrappers import MultiRNNCell
from tfrnn.compat.v1.wrappers import ResidualWrapper


def _activation(activation):
    """TF1's activation argument: None is tanh; a name or a callable."""
    if activation is None:
        return tf.math.tanh
    return keras.activations.get(activation) if isinstance(activation, str) else activation


def _check_units(cell, num_units):
    if int(num_units) <= 0:
        raise ValueError(f"{cell}: num_units must be positive; got {num_units}.")
    return int(num_units)


def _input_depth(cell, inputs_shape):
    if inputs_shape[-1] is None:
        raise ValueError(
            f"{type(cell).__name__}: expected inputs.shape[-1] to be known, saw "
            f"shape {inputs_shape}."
        )
    return int(inputs_shape[-1])


class _SquareCell(RNNCell):
    """A cell whose output is its new state, both `num_units` wide."""

    def __init__(self, num_units, activation, reuse, name, dtype, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units = _check_units(type(self).__name__, num_units)
        self._activation = _activation(activation)

    @property
    def state_size(self):
        return self._num_units

    @property
    def output_size(self):
        return self._num_units


class BasicRNNCell(_SquareCell):
    """TF1's `BasicRNNCell`: `h' = activation([x, h] @ kernel + bias)`."""

    def __init__(self, num_units, activation=None, reuse=None, name=None,
                 dtype=None, **kwargs):
        super().__init__(num_units, activation, reuse, name, dtype, **kwargs)

    def build(self, inputs_shape):
        depth = _input_depth(self, inputs_shape)
        self._kernel = self.add_variable("kernel", [depth + self._num_units, self._num_units])
        self._bias = self.add_variable(
            "bias", [self._num_units], initializer=tf.compat.v1.zeros_initializer()
        )

    def call(self, inputs, state):
        gate_inputs = tf.matmul(tf.concat([inputs, state], 1), self._kernel)
        output = self._activation(tf.nn.bias_add(gate_inputs, self._bias))
        return output, output


class GRUCell(_SquareCell):
    """TF1's `GRUCell` (Cho et al. 2014): the reset gate acts before the matmul.

    ```
    r, u = split(sigmoid([x, h] @ gates/kernel + gates/bias))
    c = activation([x, r * h] @ candidate/kernel + candidate/bias)
    h' = u * h + (1 - u) * c
    ```

    `gates/bias` starts at 1.0 (TF1's default). Keras's `GRUCell` computes
    this with `reset_after=False` (its default `True` is another variant).
    """

    def __init__(self, num_units, activation=None, reuse=None,
                 kernel_initializer=None, bias_initializer=None, name=None,
                 dtype=None, **kwargs):
        super().__init__(num_units, activation, reuse, name, dtype, **kwargs)
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer

    def build(self, inputs_shape):
        depth = _input_depth(self, inputs_shape)
        units = self._num_units
        self._gate_kernel = self.add_variable(
            "gates/kernel", [depth + units, 2 * units],
            initializer=self._kernel_initializer,
        )
        self._gate_bias = self.add_variable(
            "gates/bias", [2 * units],
            initializer=self._bias_initializer
            or tf.compat.v1.constant_initializer(1.0),
        )
        self._candidate_kernel = self.add_variable(
            "candidate/kernel", [depth + units, units],
            initializer=self._kernel_initializer,
        )
        self._candidate_bias = self.add_variable(
            "candidate/bias", [units],
            initializer=self._bias_initializer or tf.compat.v1.zeros_initializer(),
        )

    def call(self, inputs, state):
        gate_inputs = tf.matmul(tf.concat([inputs, state], 1), self._gate_kernel)
        value = tf.sigmoid(tf.nn.bias_add(gate_inputs, self._gate_bias))
        r, u = tf.split(value=value, num_or_size_splits=2, axis=1)
        candidate = tf.matmul(tf.concat([inputs, r * state], 1), self._candidate_kernel)
        c = self._activation(tf.nn.bias_add(candidate, self._candidate_bias))
        new_h = u * state + (1 - u) * c
        return new_h, new_h


class _LSTM(RNNCell):
    """TF1's LSTM, for `BasicLSTMCell` and `LSTMCell` (its options, which a
    `BasicLSTMCell` lacks, default to off here): see `LSTMCell`.

    A `BasicLSTMCell` is an `LSTMCell` without peepholes, clipping or
    projection: the same variables and the same numbers (its TF1 code orders
    some commuting products differently and splits a concatenated state with
    `split` instead of `slice`, which change no bit).
    """

    _use_peepholes = False
    _cell_clip = _initializer = _num_proj = _proj_clip = None
    _num_unit_shards = _num_proj_shards = None

    def __init__(self, num_units, forget_bias, state_is_tuple, activation, reuse,
                 name, dtype, **kwargs):
        super().__init__(name=name, dtype=dtype, _reuse=reuse, **kwargs)
        self._num_units = _check_units(type(self).__name__, num_units)
        self._forget_bias = forget_bias
        self._state_is_tuple = state_is_tuple
        self._activation = _activation(activation)

    @property
    def state_size(self):
        units, output = self._num_units, self._num_proj or self._num_units
        return LSTMStateTuple(units, output) if self._state_is_tuple else units + output

    @property
    def output_size(self):
        return self._num_proj or self._num_units

    def build(self, inputs_shape):
        depth = _input_depth(self, inputs_shape)
        units = self._num_units
        shards = self._num_unit_shards
        self._kernel = self.add_variable(
            "kernel", [depth + self.output_size, 4 * units],
            initializer=self._initializer,
            partitioner=shards and tf.compat.v1.fixed_size_partitioner(shards),
        )
        self._bias = self.add_variable(
            "bias", [4 * units], initializer=tf.compat.v1.zeros_initializer()
        )
        if self._use_peepholes:
            self._w_f_diag, self._w_i_diag, self._w_o_diag = (
                self.add_variable(name, [units], initializer=self._initializer)
                for name in ("w_f_diag", "w_i_diag", "w_o_diag")
            )
        if self._num_proj is not None:
            shards = self._num_proj_shards
            self._proj_kernel = self.add_variable(
                "projection/kernel", [units, self._num_proj],
                initializer=self._initializer,
                partitioner=shards and tf.compat.v1.fixed_size_partitioner(shards),
            )

    def call(self, inputs, state):
        units, sigmoid = self._num_units, tf.sigmoid
        if self._state_is_tuple:
            c_prev, m_prev = state
        else:
            c_prev = tf.slice(state, [0, 0], [-1, units])
            m_prev = tf.slice(state, [0, units], [-1, self.output_size])
        lstm_matrix = tf.matmul(tf.concat([inputs, m_prev], 1), self._kernel)
        lstm_matrix = tf.nn.bias_add(lstm_matrix, self._bias)
        i, j, f, o = tf.split(value=lstm_matrix, num_or_size_splits=4, axis=1)
        if self._use_peepholes:
            c = sigmoid(f + self._forget_bias + self._w_f_diag * c_prev) * c_prev + sigmoid(
                i + self._w_i_diag * c_prev
            ) * self._activation(j)
        else:
            c = sigmoid(f + self._forget_bias) * c_prev + sigmoid(i) * self._activation(j)
        if self._cell_clip is not None:
            c = tf.clip_by_value(c, -self._cell_clip, self._cell_clip)
        if self._use_peepholes:
            m = sigmoid(o + self._w_o_diag * c) * self._activation(c)
        else:
            m = sigmoid(o) * self._activation(c)
        if self._num_proj is not None:
            m = tf.matmul(m, self._proj_kernel)
            if self._proj_clip is not None:
                m = tf.clip_by_value(m, -self._proj_clip, self._proj_clip)
        if self._state_is_tuple:
            return m, LSTMStateTuple(c, m)
        return m, tf.concat([c, m], 1)


class BasicLSTMCell(_LSTM):
    """TF1's `BasicLSTMCell`: gates i, j, f, o from one `[x, h] @ kernel`.

    ```
    i, j, f, o = split([x, h] @ kernel + bias)
    c' = c * sigmoid(f + forget_bias) + sigmoid(i) * activation(j)
    h' = activation(c') * sigmoid(o)
    return h', LSTMStateTuple(c', h')   # or concat([c', h']) if not state_is_tuple
    ```
    """

    def __init__(self, num_units, forget_bias=1.0, state_is_tuple=True,
                 activation=None, reuse=None, name=None, dtype=None, **kwargs):
        super().__init__(num_units, forget_bias, state_is_tuple, activation, reuse,
                         name, dtype, **kwargs)


class LSTMCell(_LSTM):
    """TF1's `LSTMCell`: peepholes, cell and projection clipping, projection.

    ```
    i, j, f, o = split([x, m] @ kernel + bias)          # m: previous output
    c' = sigmoid(f + forget_bias + w_f_diag * c) * c + sigmoid(i + w_i_diag * c) * act(j)
    c' = clip(c', -cell_clip, cell_clip)                 # if cell_clip
    m' = sigmoid(o + w_o_diag * c') * act(c')            # peephole terms if use_peepholes
    m' = clip(m' @ projection/kernel, -proj_clip, proj_clip)   # if num_proj
    return m', LSTMStateTuple(c', m')
    ```
    """

    def __init__(self, num_units, use_peepholes=False, cell_clip=None,
                 initializer=None, num_proj=None, proj_clip=None,
                 num_unit_shards=None, num_proj_shards=None, forget_bias=1.0,
                 state_is_tuple=True, activation=None, reuse=None, name=None,
                 dtype=None, **kwargs):
        super().__init__(num_units, forget_bias, state_is_tuple, activation, reuse,
                         name, dtype, **kwargs)
        self._use_peepholes = use_peepholes
        self._cell_clip = cell_clip
        self._initializer = initializer
        self._num_proj = num_proj
        self._proj_clip = proj_clip
        self._num_unit_shards = num_unit_shards
        self._num_proj_shards = num_proj_shards


__all__ = [
    "BasicLSTMCell",
    "BasicRNNCell",
    "DropoutWrapper",
    "GRUCell",
    "LSTMCell",
    "LSTMStateTuple",
    "MultiRNNCell",
    "RNNCell",
    "ResidualWrapper",
]
