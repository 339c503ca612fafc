"""Input checks shared by `static_rnn` and `dynamic_rnn`.

Every check fails early, with a message that says what to do. Checks on
values (`sequence_length` negative or longer than the sequence) are
`tf.debugging` assertions, so they also hold inside `tf.function` and in
TF1-style graphs.
"""

import tensorflow as tf

from tfrnn import step


def sequence_tensor(inputs, time_major, unroll):
    """`inputs` as a rank-3 tensor with at least one step; clear errors otherwise."""
    inputs = tf.convert_to_tensor(inputs)
    if inputs.shape.rank != 3:
        layout = (
            "[time, batch, features]" if time_major else ("[batch, time, features]")
        )
        extra = (
            " (static_rnn also takes TF1's form: a Python list of "
            "[batch, features] tensors, one per step)"
            if unroll == "static_rnn"
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


def step_list(inputs):
    """TF1's list form of `static_rnn` inputs, checked: rank-2 tensors."""
    if not inputs:
        raise ValueError(
            "static_rnn: inputs is an empty list; it needs one "
            "[batch, features] tensor per time step."
        )
    steps = [tf.convert_to_tensor(x) for x in inputs]
    for t, x in enumerate(steps):
        if x.shape.rank != 2:
            raise ValueError(
                f"static_rnn: inputs[{t}] has shape {x.shape}; a list input must "
                "hold one rank-2 [batch, features] tensor per time step (or pass "
                "a single rank-3 [batch, time, features] tensor)."
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
    return state


def unroll_arguments(
    cell, batch_size, features, time_steps, dtype, initial_state_, lengths, unroll
):
    """Checks what both unrolls take; returns `(initial_state, lengths)`.

    `batch_size` and `time_steps` are ints or scalar tensors, `features` an int
    or None. `lengths` comes back as a checked int32 vector, or None.
    """
    feature_size(cell, features, unroll)
    state = initial_state(cell, initial_state_, batch_size, dtype, unroll)
    if lengths is not None:
        lengths = sequence_length(lengths, batch_size, time_steps, unroll)
    return state, lengths
