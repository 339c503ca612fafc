"""TF1's cells made of cells: `MultiRNNCell`, `DropoutWrapper`, `ResidualWrapper`.

As in TF1, a `MultiRNNCell` puts layer k's variables under
`multi_rnn_cell/cell_k/`, while the wrappers add no scope of their own: a
wrapped cell's variables are named as the bare cell's. `build_variables`,
which `tfrnn.compat.v1.nn`'s functions call before their loops, lives here
because it must know the wrappers: they have a `__call__` of their own, yet
build their cell's variables as a layer does.
"""

import hashlib

import tensorflow as tf

from tfrnn.compat.v1.rnn_cell_base import LSTMStateTuple
from tfrnn.compat.v1.rnn_cell_base import RNNCell
from tfrnn.compat.v1.rnn_cell_base import assert_like_rnncell

_vs = tf.compat.v1.variable_scope


def build_variables(cell, inputs_shape, dtype):
    """Creates `cell`'s variables in the current scope if it can say how
    (cells that `build` as TF1's layers do); cells with their own `__call__`
    (old-style TF1 user cells, Keras cells) make theirs on their first call."""
    if isinstance(cell, RNNCell) and (
        type(cell).__call__ is RNNCell.__call__ or isinstance(cell, _Wrapper)
    ):
        cell.build_variables(inputs_shape, dtype)


def _output_shape(cell, inputs_shape):
    return tf.TensorShape(inputs_shape)[:-1].concatenate([cell.output_size])


class MultiRNNCell(RNNCell):
    """TF1's `MultiRNNCell`: layer k reads layer k-1's output; state is a
    tuple with one entry per layer (or their concatenation when not
    `state_is_tuple`)."""

    def __init__(self, cells, state_is_tuple=True):
        super().__init__()
        if not cells:
            raise ValueError("Must specify at least one cell for MultiRNNCell.")
        if not tf.nest.is_nested(cells):
            raise TypeError(f"cells must be a list or tuple, but saw: {cells}.")
        if len(set(id(cell) for cell in cells)) < len(cells):  # as TF1: allowed
            tf.get_logger().warning(
                "At least two cells provided to MultiRNNCell are the same object "
                "and will share weights. Create one cell per layer (e.g. "
                "[BasicLSTMCell(n) for _ in range(layers)], not [cell] * layers)."
            )
        self._cells = list(cells)
        self._state_is_tuple = state_is_tuple
        if not state_is_tuple and any(
            tf.nest.is_nested(cell.state_size) for cell in self._cells
        ):
            raise ValueError(
                "Some cells return tuples of states, but the flag "
                "state_is_tuple is not set. State sizes are: "
                f"{[cell.state_size for cell in self._cells]}"
            )

    @property
    def state_size(self):
        if self._state_is_tuple:
            return tuple(cell.state_size for cell in self._cells)
        return sum(cell.state_size for cell in self._cells)

    @property
    def output_size(self):
        return self._cells[-1].output_size

    def zero_state(self, batch_size, dtype):
        if not self._state_is_tuple:
            return super().zero_state(batch_size, dtype)
        with tf.name_scope("MultiRNNCellZeroState"):
            return tuple(cell.zero_state(batch_size, dtype) for cell in self._cells)

    def _inner_cells(self):
        return self._cells

    def build(self, inputs_shape):
        shape = inputs_shape
        for i, cell in enumerate(self._cells):
            with _vs("cell_%d" % i):
                build_variables(cell, shape, self.dtype)
            shape = _output_shape(cell, shape)

    def call(self, inputs, state):
        position, layer_input, new_states = 0, inputs, []
        for i, cell in enumerate(self._cells):
            with _vs("cell_%d" % i):
                if self._state_is_tuple:
                    if not tf.nest.is_nested(state):
                        raise ValueError(
                            f"Expected state to be a tuple of length "
                            f"{len(self.state_size)}, but received: {state}"
                        )
                    layer_state = state[i]
                else:
                    layer_state = tf.slice(state, [0, position], [-1, cell.state_size])
                    position += cell.state_size
                layer_input, layer_state = cell(layer_input, layer_state)
                new_states.append(layer_state)
        if self._state_is_tuple:
            return layer_input, tuple(new_states)
        return layer_input, tf.concat(new_states, 1)


class _Wrapper(RNNCell):
    """A cell around a cell; no variable scope of its own (TF1's wrappers)."""

    def __init__(self, cell, **kwargs):
        super().__init__(**kwargs)
        assert_like_rnncell("cell", cell)
        self.cell = cell

    @property
    def wrapped_cell(self):
        return self.cell

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return self.cell.output_size

    def zero_state(self, batch_size, dtype):
        with tf.name_scope(type(self).__name__ + "ZeroState"):
            return self.cell.zero_state(batch_size, dtype)

    def _inner_cells(self):
        return [self.cell] if isinstance(self.cell, RNNCell) else []

    def build_variables(self, inputs_shape, dtype, scope=None):
        if isinstance(self.cell, RNNCell):
            self.cell.build_variables(inputs_shape, dtype, scope)

    def __call__(self, inputs, state, scope=None):
        return self._call_wrapped_cell(inputs, state, scope)


def _default_dropout_state_filter_visitor(substate):
    """TF1's: drop an LSTM's h, never its c; everything else."""
    if isinstance(substate, LSTMStateTuple):
        return LSTMStateTuple(c=False, h=True)
    if isinstance(substate, tf.TensorArray):
        return False
    return True


def _should_dropout(keep_prob):
    return not isinstance(keep_prob, float) or keep_prob < 1


class DropoutWrapper(_Wrapper):
    """TF1's `DropoutWrapper`: dropout on a cell's inputs, state and outputs.

    ```
    x = dropout(x, keep=input_keep_prob)
    output, new_state = cell(x, state)
    new_state = dropout(new_state, keep=state_keep_prob)  # not an LSTM's c
    output = dropout(output, keep=output_keep_prob)
    ```

    Always active, as in TF1 (feed a keep probability of 1.0 to evaluate).
    Keep probabilities may be tensors (placeholders). With
    `variational_recurrent`, one uniform noise `[1, size]` per tensor is drawn
    when the wrapper is made (so `dtype`, and `input_size` for input dropout,
    are required) and reused at every step and for every row, as TF1 does.
    """

    def __init__(self, cell, input_keep_prob=1.0, output_keep_prob=1.0,
                 state_keep_prob=1.0, variational_recurrent=False,
                 input_size=None, dtype=None, seed=None,
                 dropout_state_filter_visitor=None, **kwargs):
        super().__init__(cell, dtype=dtype, **kwargs)
        if dropout_state_filter_visitor is not None and not callable(
            dropout_state_filter_visitor
        ):
            raise TypeError(
                "dropout_state_filter_visitor must be callable. "
                f"Received: {dropout_state_filter_visitor}"
            )
        self._dropout_state_filter = (
            dropout_state_filter_visitor or _default_dropout_state_filter_visitor
        )
        for prob, attr in ((input_keep_prob, "input_keep_prob"),
                           (state_keep_prob, "state_keep_prob"),
                           (output_keep_prob, "output_keep_prob")):
            tensor = tf.convert_to_tensor(prob)
            value = tf.get_static_value(tensor)
            if value is None:
                setattr(self, f"_{attr}", tensor)
                continue
            if value < 0 or value > 1:
                raise ValueError(f"Parameter {attr} must be between 0 and 1. Received {value}")
            setattr(self, f"_{attr}", float(value))
        self._variational_recurrent = variational_recurrent
        self._seed = seed
        self._noise = {"input": None, "state": None, "output": None}
        if variational_recurrent:
            self._draw_variational_noise(input_size, dtype)

    def _draw_variational_noise(self, input_size, dtype):
        if dtype is None:
            raise ValueError("When variational_recurrent=True, dtype must be provided")

        def noise_like(sizes, salt):
            flat = tf.nest.flatten(sizes)
            noise = [
                tf.random.uniform(
                    tf.concat(([1], tf.TensorShape(size).as_list()), 0),
                    seed=self._gen_seed(salt, i), dtype=dtype,
                )
                for i, size in enumerate(flat)
            ]
            return tf.nest.pack_sequence_as(sizes, noise)

        if _should_dropout(self._input_keep_prob):
            if input_size is None:
                raise ValueError(
                    "When variational_recurrent=True and input_keep_prob < 1.0 or "
                    "is unknown, input_size must be provided"
                )
            self._noise["input"] = noise_like(input_size, "input")
        self._noise["state"] = noise_like(self.cell.state_size, "state")
        self._noise["output"] = noise_like(self.cell.output_size, "output")

    def _gen_seed(self, salt_prefix, index):
        if self._seed is None:
            return None
        string = (str(self._seed) + "%s_%d" % (salt_prefix, index)).encode("utf-8")
        return int(hashlib.md5(string).hexdigest()[:8], 16) & 0x7FFFFFFF

    def _dropout(self, values, salt, keep_prob, which=None):
        """Dropout on the leaves of `values` that `which` marks (all by default)."""
        which = values if which is None else which
        flat_values = tf.__internal__.nest.flatten_up_to(which, values)
        noise = self._noise[salt]
        flat_noise = (
            [None] * len(flat_values) if noise is None
            else tf.__internal__.nest.flatten_up_to(which, noise)
        )
        dropped = []
        for i, (do_dropout, value, leaf_noise) in enumerate(
            zip(tf.nest.flatten(which), flat_values, flat_noise)
        ):
            if isinstance(do_dropout, bool) and not do_dropout:
                dropped.append(value)
            elif leaf_noise is None:
                dropped.append(tf.nn.dropout(
                    value, rate=1.0 - keep_prob, seed=self._gen_seed(salt, i)
                ))
            else:  # uniform [keep, 1 + keep) floored: 1 with probability keep
                binary = tf.floor(keep_prob + leaf_noise)
                dropped.append(tf.divide(value, keep_prob) * binary)
        return tf.nest.pack_sequence_as(which, dropped)

    def _call_wrapped_cell(self, inputs, state, scope):
        if _should_dropout(self._input_keep_prob):
            inputs = self._dropout(inputs, "input", self._input_keep_prob)
        output, new_state = self.cell(inputs, state, scope=scope)
        if _should_dropout(self._state_keep_prob):
            which = tf.__internal__.nest.get_traverse_shallow_structure(
                self._dropout_state_filter, new_state
            )
            new_state = self._dropout(new_state, "state", self._state_keep_prob, which)
        if _should_dropout(self._output_keep_prob):
            output = self._dropout(output, "output", self._output_keep_prob)
        return output, new_state


class ResidualWrapper(_Wrapper):
    """TF1's `ResidualWrapper`: `output = residual_fn(inputs, cell_output)`,
    by default `inputs + cell_output` (the cell's output size must equal the
    input size)."""

    def __init__(self, cell, residual_fn=None, **kwargs):
        super().__init__(cell, **kwargs)
        self._residual_fn = residual_fn

    def _call_wrapped_cell(self, inputs, state, scope):
        outputs, new_state = self.cell(inputs, state, scope=scope)

        def default_residual_fn(inputs, outputs):
            tf.nest.assert_same_structure(inputs, outputs)
            tf.nest.map_structure(
                lambda i, o: i.get_shape().assert_is_compatible_with(o.get_shape()),
                inputs, outputs,
            )
            return tf.nest.map_structure(lambda i, o: i + o, inputs, outputs)

        return (self._residual_fn or default_residual_fn)(inputs, outputs), new_state
