"""The base of `tfrnn.compat.v1`'s cells: TF1's `RNNCell` class, which gives a
cell TF1's variable scopes and variables; `LSTMStateTuple`, the state that
the LSTM cells return and `DropoutWrapper` recognises; and
`assert_like_rnncell`, TF1's check that an argument is a cell.

The cells (`rnn_cell`) and the cells made of cells (`wrappers`) build on
these. Users find `RNNCell` and `LSTMStateTuple` in
`tfrnn.compat.v1.nn.rnn_cell`, whose docstring tells how variables are named.
"""

import collections
import contextlib
import re

import tensorflow as tf

_vs = tf.compat.v1.variable_scope


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """TF1's LSTM state: `(c, h)`, cell state first (Keras's is `[h, c]`)."""

    __slots__ = ()

    @property
    def dtype(self):
        if self.c.dtype != self.h.dtype:
            raise TypeError(
                f"Inconsistent LSTMStateTuple dtypes: {self.c.dtype} vs {self.h.dtype}"
            )
        return self.c.dtype


def _snake_case(name):
    """TF1's layer naming: `BasicLSTMCell` -> `basic_lstm_cell`."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
    return name if name[0] != "_" else "private" + name


def _in_graph_mode():
    """A `tf.compat.v1` graph (Session), as opposed to eager or `tf.function`."""
    return not tf.compat.v1.executing_eagerly_outside_functions()


class RNNCell:
    """TF1's RNN cell base class, for built-in cells and users' own.

    A subclass defines `state_size`, `output_size` and either `call(inputs,
    state)` (with `build(inputs_shape)` creating variables by `add_variable`),
    or `__call__(inputs, state, scope=None)` itself, exactly as for
    `tf.compat.v1.nn.rnn_cell.RNNCell`:

    >>> class Counter(RNNCell):
    ...     state_size = 1
    ...     output_size = 1
    ...     def call(self, inputs, state):
    ...         return state + 1, state + 1
    >>> Counter().zero_state(2, tf.float32).shape
    TensorShape([2, 1])
    """

    def __init__(self, trainable=True, name=None, dtype=None, **kwargs):
        reuse = kwargs.pop("_reuse", None)  # TF1's cells pass their `reuse` so
        unknown = set(kwargs) - {"_scope", "autocast"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unexpected arguments {sorted(unknown)}."
            )
        self.trainable = trainable
        self._name = name
        self._dtype = tf.as_dtype(dtype) if dtype is not None else None
        self._reuse = reuse
        self._scope = None
        self._own_variables = []
        self.built = False

    @property
    def name(self):
        return getattr(self, "_name", None) or _snake_case(type(self).__name__)

    @property
    def dtype(self):
        return getattr(self, "_dtype", None)

    @property
    def state_size(self):
        raise NotImplementedError(f"{type(self).__name__} must define state_size.")

    @property
    def output_size(self):
        raise NotImplementedError(f"{type(self).__name__} must define output_size.")

    def build(self, inputs_shape):
        """Creates the cell's variables (with `add_variable`); called once."""

    def call(self, inputs, state):
        raise NotImplementedError(
            f"{type(self).__name__} must define call(inputs, state) or __call__."
        )

    def __call__(self, inputs, state, scope=None):
        """`(output, new_state)`: one step, building the cell on its first call."""
        inputs = tf.convert_to_tensor(inputs)
        with self._variable_scope(scope):
            self._maybe_build(inputs.shape, inputs.dtype)
            return self.call(inputs, state)

    def zero_state(self, batch_size, dtype):
        """Zeros shaped like `state_size`, `[batch_size, size]` each."""
        with tf.name_scope(type(self).__name__ + "ZeroState"):
            return tf.nest.map_structure(
                lambda size: tf.zeros(
                    tf.concat([[batch_size], tf.TensorShape(size).as_list()], 0),
                    dtype,
                ),
                self.state_size,
            )

    def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
        """TF2's spelling of `zero_state`."""
        if inputs is not None:
            batch_size, dtype = tf.shape(inputs)[0], inputs.dtype
        return self.zero_state(batch_size, dtype)

    # Variables ---------------------------------------------------------------

    @contextlib.contextmanager
    def _variable_scope(self, scope=None):
        """Enters the cell's variable scope, captured on the first call as TF1's
        layers do: `scope`, or the enclosing scope + the cell's name."""
        if getattr(self, "_scope", None) is None:
            if getattr(self, "_reuse", None):
                opened = _vs(scope if scope is not None else self.name)
            else:
                opened = _vs(scope, default_name=self.name)
            with opened as captured:
                self._scope = captured
        with _vs(
            self._scope, reuse=getattr(self, "_reuse", None) or None,
            auxiliary_name_scope=False,
        ):
            yield

    def _maybe_build(self, inputs_shape, dtype):
        if not getattr(self, "built", False):
            if getattr(self, "_dtype", None) is None:
                self._dtype = tf.as_dtype(dtype).base_dtype
            self.build(tf.TensorShape(inputs_shape))
            self.built = True

    def build_variables(self, inputs_shape, dtype, scope=None):
        """Creates the variables a call on `inputs_shape` would, in the scope
        the call would use; `tfrnn.compat.v1.nn` calls this before its loops."""
        with self._variable_scope(scope):
            self._maybe_build(inputs_shape, dtype)

    def add_variable(self, name, shape, dtype=None, initializer=None,
                     trainable=None, partitioner=None):
        """A variable `<cell scope>/<name>`, as TF1's `LayerRNNCell.add_variable`.

        In a graph, `tf.compat.v1.get_variable` (the scope's reuse and
        initializer apply); eagerly, a `tf.Variable` owned by the cell. The
        default initializer is the scope's, else Glorot uniform (TF1's).
        """
        dtype = tf.as_dtype(dtype or self.dtype or tf.float32)
        trainable = getattr(self, "trainable", True) if trainable is None else trainable
        if _in_graph_mode():
            variable = tf.compat.v1.get_variable(
                name, shape, dtype, initializer=initializer,
                trainable=trainable, partitioner=partitioner,
            )
        else:
            if partitioner is not None:
                raise ValueError(
                    f"{type(self).__name__}: partitioned variables (num_unit_shards, "
                    "num_proj_shards) exist only in a tf.compat.v1 graph; drop them."
                )
            scope = tf.compat.v1.get_variable_scope()
            initializer = (
                initializer or scope.initializer
                or tf.compat.v1.glorot_uniform_initializer()
            )
            with tf.init_scope(), tf.compat.v1.name_scope(None):
                variable = tf.Variable(
                    initializer(shape, dtype=dtype), name=f"{scope.name}/{name}",
                    trainable=trainable, dtype=dtype,
                )
        if not hasattr(self, "_own_variables"):
            self._own_variables = []
        self._own_variables.append(variable)
        return variable

    add_weight = add_variable

    def _inner_cells(self):
        return []

    @property
    def variables(self):
        """The cell's variables and those of the cells inside it."""
        found = list(getattr(self, "_own_variables", []))
        found += [v for cell in self._inner_cells() for v in cell.variables]
        return list({id(v): v for v in found}.values())  # a shared cell's once

    weights = variables

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]

    trainable_weights = trainable_variables


def assert_like_rnncell(cell_name, cell):
    """TF1's check that `cell` has what an unroll uses; TypeError otherwise."""
    missing = [
        message
        for message, ok in (
            ("'output_size' property is missing", hasattr(cell, "output_size")),
            ("'state_size' property is missing", hasattr(cell, "state_size")),
            (
                "either 'zero_state' or 'get_initial_state' method is required",
                hasattr(cell, "zero_state") or hasattr(cell, "get_initial_state"),
            ),
            ("is not callable", callable(cell)),
        )
        if not ok
    ]
    if missing:
        raise TypeError(
            f"The argument {cell_name!r} ({cell}) is not an RNNCell: "
            f"{', '.join(missing)}. Use a cell of tfrnn.compat.v1.nn.rnn_cell or "
            "subclass tfrnn.compat.v1.nn.rnn_cell.RNNCell."
        )
