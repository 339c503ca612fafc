"""Input checks shared by `static_rnn` and `dynamic_rnn`.

Every check fails early, with a message that says what to do. Checks on
values (`sequence_length` negative or longer than the sequence) are
`tf.debugging` assertions, so they also hold inside `tf.function` and in
TF1-style graphs. XLA (`tf.function(jit_compile=True)`) drops those
assertions, so there lengths are checked when the graph is built if their
values are known then, and refused otherwise (a mask needs no check).
"""

import contextlib
import contextvars

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from tfrnn import step

_DTYPE_TYPES = (tf.DType, np.dtype)
_CALLER = contextvars.ContextVar("tfrnn_caller", default=None)


@contextlib.contextmanager
def called_as(name):
    """Inside, the unrolls' errors begin with `name`, what the user called
    (`tfrnn.RNN`, `bidirectional_dynamic_rnn`), instead of the unroll that
    runs; the outermost name holds."""
    token = _CALLER.set(_CALLER.get() or name)
    try:
        yield
    finally:
        _CALLER.reset(token)


def caller(unroll):
    """The name errors begin with: the one `called_as` set, else `unroll`."""
    return _CALLER.get() or unroll


def _is_dtype(value):
    return isinstance(value, _DTYPE_TYPES) or (
        isinstance(value, type) and issubclass(value, np.generic)
    )


def rnn_cell(cell, unroll):
    """Refuses what is not an RNN cell, naming what to pass instead."""
    if isinstance(cell, keras.layers.RNN):
        inner = type(cell.cell).__name__
        units = getattr(cell.cell, "units", "units")
        raise TypeError(
            f"{unroll}: cell is a Keras RNN layer ({type(cell).__name__}), which "
            f"runs its own loop over time; pass a cell instead: the layer's "
            f".cell, or keras.layers.{inner}({units})."
        )
    if not hasattr(cell, "state_size") or not callable(cell):
        raise TypeError(
            f"{unroll}: cell must be an RNN cell, with a state_size and a "
            "call(inputs, states) that returns (output, new_states), e.g. "
            f"keras.layers.LSTMCell(units); got {type(cell).__name__}, which "
            "has no state_size."
        )


def unroll_factor(unroll, name):
    """`unroll`, checked: an int >= 1, the number of steps per loop iteration."""
    if isinstance(unroll, bool) or not isinstance(unroll, (int, np.integer)):
        raise TypeError(
            f"{name}: unroll must be an int >= 1 (steps per loop "
            f"iteration); got {unroll!r}. For a fully unrolled graph use "
            "tfrnn.static_rnn."
        )
    if unroll < 1:
        raise ValueError(
            f"{name}: unroll must be >= 1 (steps per loop iteration); got "
            f"{unroll}. unroll=1 is the plain while loop."
        )
    return int(unroll)


def time_major(value, unroll):
    """Refuses a `time_major` that is not a bool: most likely TF1's positional
    order (TF1's fifth argument is `dtype` in dynamic_rnn, `sequence_length`
    in static_rnn; tfrnn's is `time_major`)."""
    bool_like = isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (int, np.integer)) and value in (0, 1)
    )
    if not bool_like:
        raise TypeError(
            f"{unroll}: time_major must be True or False; got {value!r}. "
            "tfrnn's fifth positional argument is time_major, TF1's is dtype "
            "(dynamic_rnn) or sequence_length (static_rnn): pass those by "
            "keyword, dtype=... or sequence_length=...."
        )


def sequence_tensor(inputs, time_major, unroll, takes_lists=False):
    """`inputs` as a rank-3 float tensor with at least one step; clear errors
    otherwise (`takes_lists`: the error names TF1's list form too)."""
    inputs = floating(tf.convert_to_tensor(inputs), unroll)
    if inputs.shape.rank != 3:
        layout = (
            "[time, batch, features]" if time_major else ("[batch, time, features]")
        )
        extra = (
            " (static_rnn also takes TF1's form: a Python list of "
            "[batch, features] tensors, one per step)"
            if takes_lists
            else ""
        )
        raise ValueError(
            f"{unroll}: inputs must be a rank-3 tensor {layout}{extra}; got "
            f"shape {inputs.shape}. Reshape them, e.g. MNIST images [B, 28, 28] "
            "read row by row are already [batch, time=28, features=28]."
        )
    if inputs.shape[0 if time_major else 1] == 0:
        raise ValueError(f"{unroll}: inputs have 0 time steps; give at least one.")
    return inputs


def floating(inputs, unroll):
    """Refuses inputs that are not floating point, which Keras's cells would
    silently promote to floats (token ids most often)."""
    if not inputs.dtype.is_floating:
        raise TypeError(
            f"{unroll}: inputs must be floating point; got {inputs.dtype.name}. "
            "Embed token ids first (keras.layers.Embedding), or cast numeric "
            "features: tf.cast(inputs, tf.float32)."
        )
    return inputs


def step_list(inputs, unroll):
    """TF1's list form of `static_rnn` inputs, checked: rank-2 float tensors."""
    if not inputs:
        raise ValueError(
            f"{unroll}: inputs is an empty list; it needs one "
            "[batch, features] tensor per time step."
        )
    steps = [floating(tf.convert_to_tensor(x), unroll) for x in inputs]
    for t, x in enumerate(steps):
        if x.shape.rank != 2:
            raise ValueError(
                f"{unroll}: inputs[{t}] has shape {x.shape}; a list input must "
                "hold one rank-2 [batch, features] tensor per time step (or pass "
                "a single rank-3 [batch, time, features] tensor)."
            )
        if not x.shape.is_compatible_with(steps[0].shape):
            raise ValueError(
                f"{unroll}: inputs[{t}] has shape {x.shape} where inputs[0] has "
                f"{steps[0].shape}; every step of a list input must have the same "
                "[batch, features] shape."
            )
    return steps


def built_input_size(cell):
    """The feature size a built cell expects, when it can be read off it."""
    if not getattr(cell, "built", False):
        return None
    if getattr(cell, "cells", None):
        return built_input_size(cell.cells[0])
    inner = getattr(cell, "cell", None)
    if inner is not None and hasattr(inner, "state_size"):
        return built_input_size(inner)
    kernel = getattr(cell, "kernel", None)
    return None if kernel is None else int(kernel.shape[0])


def feature_size(cell, features, unroll):
    """Refuses a feature size the cell was not built for."""
    expected = built_input_size(cell)
    if expected is not None and features is not None and features != expected:
        raise ValueError(
            f"{unroll}: inputs have {features} features per step but the "
            f"{type(cell).__name__} was built for {expected}. Feed "
            f"[batch, time, {expected}] inputs, or use a new cell."
        )


def sequence_length(lengths, batch_size, time_steps, unroll):
    """`lengths` as an int32 `[batch]` vector with 0 <= lengths <= time_steps."""
    if _is_dtype(lengths):
        raise TypeError(
            f"{unroll}: sequence_length got a dtype ({tf.as_dtype(lengths).name}), "
            "most likely TF1's positional order: TF1's static_rnn(cell, inputs, "
            "initial_state, dtype, sequence_length) takes dtype fourth, tfrnn's "
            "takes sequence_length fourth. Pass it by keyword: dtype="
            f"tf.{tf.as_dtype(lengths).name}."
        )
    lengths = tf.convert_to_tensor(lengths)
    if not lengths.dtype.is_integer:
        raise TypeError(
            f"{unroll}: sequence_length must be int32 or int64; got "
            f"{lengths.dtype.name}. Cast it, e.g. tf.cast(lengths, tf.int32)."
        )
    if lengths.shape.rank != 1:
        raise ValueError(
            f"{unroll}: sequence_length must be a vector of shape [batch_size], "
            f"one length per sequence; got shape {lengths.shape}."
        )
    lengths = tf.cast(lengths, tf.int32)
    static_batch = tf.get_static_value(batch_size)
    if (
        lengths.shape[0] is not None
        and static_batch is not None
        and lengths.shape[0] != static_batch
    ):
        raise ValueError(
            f"{unroll}: sequence_length has {lengths.shape[0]} entries for a "
            f"batch of {static_batch}; give one length per sequence."
        )
    if _in_xla():
        _check_lengths_when_built(lengths, time_steps, unroll)
        return lengths
    return _asserted_lengths(lengths, batch_size, time_steps, unroll)


def _in_xla():
    """Whether the graph being built is compiled by XLA (jit_compile=True)."""
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def _check_lengths_when_built(lengths, time_steps, unroll):
    """Under XLA, where assertions are dropped: lengths known when the graph is
    built are checked then; others are refused, since nothing could stop
    out-of-range lengths from giving numbers."""
    values = tf.get_static_value(lengths)
    time = tf.get_static_value(time_steps)
    if values is None or time is None:
        raise ValueError(
            f"{unroll}: sequence_length cannot be checked inside "
            "tf.function(jit_compile=True): XLA drops tf.debugging assertions, "
            "so lengths outside [0, time] would give numbers instead of an "
            "error. Check the lengths before the compiled function and pass "
            "mask=tf.sequence_mask(lengths, time) instead (a mask needs no "
            "check), or compile without jit_compile."
        )
    if np.any(values < 0):
        raise ValueError(
            f"{unroll}: sequence_length must be >= 0; fix the negative lengths "
            f"(got {values.tolist()})."
        )
    if np.any(values > time):
        raise ValueError(
            f"{unroll}: sequence_length must be <= the number of time steps in "
            f"inputs ({time}); pad the inputs or clip the lengths (got "
            f"{values.tolist()})."
        )


def _asserted_lengths(lengths, batch_size, time_steps, unroll):
    checks = [
        tf.debugging.assert_equal(
            tf.size(lengths),
            tf.cast(batch_size, tf.int32),
            message=(
                f"{unroll}: sequence_length must have one entry per sequence "
                "in the batch"
            ),
        ),
        tf.debugging.assert_non_negative(
            lengths,
            message=(
                f"{unroll}: sequence_length must be >= 0; fix the negative lengths"
            ),
        ),
        tf.debugging.assert_less_equal(
            lengths,
            tf.cast(time_steps, tf.int32),
            message=(
                f"{unroll}: sequence_length must be <= the number of time "
                "steps in inputs; pad the inputs or clip the lengths"
            ),
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(lengths)


def mask(mask_, batch_size, time_steps, time_major_, unroll):
    """A Keras-style bool mask, checked, as a time-major `[time, batch]` tensor.

    `mask_` is `[batch, time]` (`[time, batch]` when `time_major`), True where
    a step counts.
    """
    mask_ = bool_mask(mask_, unroll)
    layout = "[time, batch]" if time_major_ else "[batch, time]"
    if mask_.shape.rank != 2:
        raise ValueError(
            f"{unroll}: mask must be {layout}, like the inputs without their "
            f"feature axis; got shape {mask_.shape}."
        )
    if not time_major_:
        mask_ = tf.transpose(mask_)
    expected = [tf.get_static_value(time_steps), tf.get_static_value(batch_size)]
    if not mask_.shape.is_compatible_with(expected):
        got = mask_.shape if time_major_ else mask_.shape[::-1]
        want = expected if time_major_ else expected[::-1]
        raise ValueError(
            f"{unroll}: mask has shape {got} for inputs of {layout} = {want}; "
            "give one entry per sequence and step."
        )
    return mask_


def bool_mask(mask_, unroll):
    """`mask_` as a tensor, refused unless bool (`keras.layers.RNN` casts any
    dtype, so that 0.2 counts as True; tfrnn asks for the cast)."""
    mask_ = tf.convert_to_tensor(mask_)
    if mask_.dtype != tf.bool:
        raise TypeError(
            f"{unroll}: mask must be bool, True where a step counts; got "
            f"{mask_.dtype.name}. Convert it, e.g. tf.cast(mask, tf.bool) (any "
            "nonzero value counts, as keras.layers.RNN reads it) or "
            "tf.sequence_mask(lengths, time)."
        )
    return mask_


def _describe(structure):
    return str(
        tf.nest.map_structure(
            lambda x: "tensor" if tf.is_tensor(x) or hasattr(x, "shape") else x,
            structure,
        )
    )


def initial_state(cell, state, batch_size, dtype, unroll):
    """The initial state nest: the given one, checked, or the cell's zero state.

    The given one must have the structure of `cell.state_size` (a tensor for a
    vanilla RNN or GRU, `[h, c]` for an LSTM, one entry per layer for a stack),
    each tensor `[batch, size]`.
    """
    if state is None:
        return step.zero_state(cell, batch_size, dtype)
    _not_tf1_positional_state(state, unroll)
    expected = cell.state_size
    try:
        tf.nest.assert_same_structure(expected, state, check_types=False)
    except (ValueError, TypeError):
        raise ValueError(
            f"{unroll}: initial_state must have the structure of the "
            f"{type(cell).__name__}'s state_size {_describe(expected)} (a "
            "tensor [batch, size] for each size); got a state with structure "
            f"{_describe(state)}. Start from tfrnn.zero_state(cell, batch_size) "
            "to see the expected structure."
        ) from None
    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    for size, tensor in zip(tf.nest.flatten(expected), tf.nest.flatten(state)):
        if tensor.shape.rank != 2 or tensor.shape[-1] not in (None, size):
            raise ValueError(
                f"{unroll}: initial_state tensor of shape {tensor.shape} where the "
                f"{type(cell).__name__} expects [batch, {size}]."
            )
    return tf.nest.map_structure(
        lambda tensor: _state_batch(tensor, batch_size, unroll), state
    )


def _not_tf1_positional_state(state, unroll):
    """Refuses lengths or a dtype given as initial_state: TF1's order."""
    if _is_dtype(state):
        raise TypeError(
            f"{unroll}: initial_state got a dtype ({tf.as_dtype(state).name}); "
            "pass it by keyword: dtype=... (tfrnn's third positional argument is "
            "initial_state)."
        )
    python_ints = all(
        isinstance(leaf, (int, np.integer)) for leaf in tf.nest.flatten(state)
    )
    int_tensor = (tf.is_tensor(state) or isinstance(state, np.ndarray)) and (
        tf.as_dtype(state.dtype).is_integer
    )
    if python_ints or int_tensor:
        raise TypeError(
            f"{unroll}: initial_state got integers of shape {_shape(state)}, which "
            "look like sequence lengths in TF1's positional order: TF1's "
            "dynamic_rnn(cell, inputs, sequence_length, initial_state, ...) takes "
            "the lengths third, tfrnn's takes initial_state third and "
            "sequence_length fourth. Pass them by keyword: sequence_length=lengths."
        )


def _shape(value):
    shape = value.shape if hasattr(value, "shape") else np.shape(value)
    return tf.TensorShape(shape).as_list()


def _state_batch(tensor, batch_size, unroll):
    """Refuses an initial-state tensor whose batch differs from the inputs'."""
    static_batch = tf.get_static_value(batch_size)
    rows = tensor.shape[0]
    if rows is not None and static_batch is not None:
        if rows != static_batch:
            raise ValueError(
                f"{unroll}: initial_state has {rows} rows for a batch of "
                f"{static_batch} sequences; give one state row per sequence, "
                f"e.g. tfrnn.zero_state(cell, {static_batch})."
            )
        return tensor
    if _in_xla():  # XLA compiles for known shapes: a mismatch fails there
        return tensor
    check = tf.debugging.assert_equal(
        tf.shape(tensor)[0],
        tf.cast(batch_size, tf.int32),
        message=(
            f"{unroll}: initial_state must have one row per sequence in the "
            "batch (tfrnn.zero_state(cell, batch_size))"
        ),
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def unroll_arguments(
    cell,
    batch_size,
    features,
    time_steps,
    dtype,
    initial_state_,
    lengths,
    mask_,
    time_major_,
    unroll,
):
    """Checks what every unroll takes; returns `(initial_state, valid)`.

    `batch_size` and `time_steps` are ints or scalar tensors, `features` an int
    or None. `valid` is `step.valid_steps` of the checked lengths and mask: a
    time-major `[time, batch]` bool tensor, or None when every step counts.
    """
    feature_size(cell, features, unroll)
    state = initial_state(cell, initial_state_, batch_size, dtype, unroll)
    if lengths is not None:
        lengths = sequence_length(lengths, batch_size, time_steps, unroll)
    if mask_ is not None:
        mask_ = mask(mask_, batch_size, time_steps, time_major_, unroll)
    return state, step.valid_steps(lengths, mask_, time_steps)
