"""One step of a recurrence, and the state handling every unroll shares.

`static_rnn`, `dynamic_rnn` and `dynamic_rnn(unroll=k)` differ only in how
they iterate over time; each step is `rnn_step`, so they agree by
construction. Which steps count (`mask`, `sequence_length`) is one
`[time, batch]` bool tensor, `valid_steps`, or None when every step does.

State is a nest shaped like `cell.state_size`: a tensor for `SimpleRNNCell`
and `GRUCell` (state_size is an int), `[h, c]` for an LSTM, one entry per
layer for a stack. Tensors are `[batch, size]`.
"""

import keras
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
import tensorflow as tf


def call_cell(cell, step_input, state, training=None):
    """`cell(step_input, state)`, with the new state in `state`'s structure."""
    kwargs = {}
    if training is not None and getattr(cell, "_call_has_training_arg", False):
        kwargs["training"] = training
    output, new_state = cell(step_input, state, **kwargs)
    return output, _as_structure_of(state, new_state, cell)


def _as_structure_of(state, new_state, cell):
    """Keras cells may return a list for a tuple, or `[h]` for `h`; the unrolls
    need the state's structure fixed from step to step, so it is restored."""
    new_leaves = tf.nest.flatten(new_state)
    if len(new_leaves) != len(tf.nest.flatten(state)):
        raise ValueError(
            f"{type(cell).__name__} returned a state with {len(new_leaves)} "
            f"tensors for a state of {len(tf.nest.flatten(state))}: its "
            "state_size does not describe the state its call() returns."
        )
    return tf.nest.pack_sequence_as(state, new_leaves)


def step_function(cell, training=None):
    """`step_fn(step_input, state) -> (output, new_state)`: one step of `cell`.

    The cell runs whole at each step, its input matmul included. Computing the
    input projection of all steps in one matmul before the loop was measured
    slower on CPU (a `[T, B, 4H]` tensor to carry and differentiate instead of
    small matmuls that stay in cache; experiments/README.md lists it among the
    optimisations tried), so it is not done here; `tfrnn.fused` does it for
    the cells whose math it knows, where it measured faster.
    """
    return lambda step_input, state: call_cell(cell, step_input, state, training)


def rnn_step(step_fn, step_input, state, valid=None):
    """One step, with tfrnn's rule for steps that do not count; every unroll calls this.

    ```
    output, new_state = step_fn(step_input, state)    # the cell's step
    for each row b where not valid[b]:                # masked, or past the end
        output[b] = 0                                 # zeros, as tf.nn.*_rnn
        new_state[b] = state[b]                       # state copied through
    ```

    A step is valid where the row's mask is True and the step is before the
    row's `sequence_length` (`valid_steps`); any pattern works, not only
    right-padded rows.

    Args:
      step_fn: one step of the cell, from `step_function`.
      step_input: this step's `[batch, features]` input.
      state: the state nest before this step.
      valid: None (every row counts), or a bool vector that broadcasts to
        `[batch]`.

    Returns:
      `(output, new_state)`.
    """
    output, new_state = step_fn(step_input, state)
    if valid is None:
        return output, new_state
    output = _where_valid(valid, output, tf.zeros_like(output))
    new_state = tf.nest.map_structure(
        lambda new, old: _where_valid(valid, new, old), new_state, state
    )
    return output, new_state


def _where_valid(valid, new, old):
    """`new` in the rows where `valid`, `old` in the others."""
    rows = tf.reshape(valid, [-1] + [1] * (new.shape.rank - 1))
    return tf.where(rows, new, old)


def last_valid_output(last, output, valid=None):
    """The output at each row's last valid step so far: `output` where `valid`,
    else `last` (zeros before a row's first valid step). Carried through the
    unrolls for `return_sequences=False`."""
    return output if valid is None else _where_valid(valid, output, last)


def valid_steps(lengths, mask, time_steps):
    """`[time, batch]` bool: which steps count, or None when all do.

    `lengths` is a checked int32 `[batch]` vector or None; `mask` a checked
    time-major `[time, batch]` bool tensor or None. With both, a step counts
    where both say so.
    """
    if lengths is None:
        return mask
    before_end = tf.range(time_steps)[:, tf.newaxis] < lengths[tf.newaxis, :]
    return before_end if mask is None else tf.logical_and(before_end, mask)


def steps_to_run(valid, time_steps):
    """How many steps a loop must run: through the last step valid in any row
    (at least 1, as TF1, so that every output has a shape), else all."""
    if valid is None:
        return time_steps
    any_row = tf.reduce_any(valid, axis=1)
    ends = tf.where(any_row, tf.range(1, tf.shape(valid)[0] + 1), 0)
    return tf.maximum(1, tf.reduce_max(ends))


def compute_dtype(cell, inputs_dtype):
    """The dtype a cell computes (and keeps its state) in: a Keras cell's
    `compute_dtype` (float16 under mixed precision), else the inputs'."""
    return tf.as_dtype(getattr(cell, "compute_dtype", None) or inputs_dtype)


def zero_state(cell, batch_size, dtype=tf.float32):
    """The cell's initial state: `cell.get_initial_state` or zeros.

    Returned as a nest with the structure of `cell.state_size` (TF1's
    `cell.zero_state(batch_size, dtype)`).
    """
    state_size = cell.state_size
    get_initial_state = getattr(cell, "get_initial_state", None)
    if get_initial_state is not None:
        leaves = tf.nest.flatten(get_initial_state(batch_size=batch_size))
        return tf.nest.pack_sequence_as(
            state_size, [tf.cast(leaf, dtype) for leaf in leaves]
        )
    return tf.nest.map_structure(
        lambda size: tf.zeros([batch_size] + tf.TensorShape(size).as_list(), dtype),
        state_size,
    )


def output_size(cell):
    """The width of one step's output (`cell.output_size`, else the state's)."""
    size = getattr(cell, "output_size", None)
    if size is None:
        size = tf.nest.flatten(cell.state_size)[0]
    return int(size)


def begin_sequence(cell, step_input, state, training=None):
    """Draws the per-sequence dropout masks of `cell` and the cells inside it.

    Keras's `DropoutRNNCell`s (the `dropout`/`recurrent_dropout` of Keras's own
    cells) and tfrnn's variational `DropoutWrapper` keep one mask for all the
    steps of a batch. The masks must exist before a `tf.while_loop` starts, so
    that the loop body only reads them (as Keras's `RNN` layer does). Masks
    depend only on shapes: `step_input` and `state` may be zeros. With
    `training=False` tfrnn's wrappers draw none, so an inference graph holds
    no random ops (Keras's cells read their masks even then, so they always
    get them).
    """
    end_sequence(cell)
    if isinstance(cell, DropoutRNNCell):
        cell.get_dropout_mask(step_input)
        cell.get_recurrent_dropout_mask(tf.nest.flatten(state)[0])
    if hasattr(cell, "draw_dropout_masks") and training is not False:
        cell.draw_dropout_masks(step_input, state)
    if hasattr(cell, "cells"):  # a stack: one state entry per layer
        layer_input = step_input
        for layer_cell, layer_state in zip(cell.cells, state):
            begin_sequence(layer_cell, layer_input, layer_state, training)
            layer_input = tf.zeros(
                [tf.shape(step_input)[0], output_size(layer_cell)], step_input.dtype
            )
    elif isinstance(getattr(cell, "cell", None), keras.layers.Layer):  # wrapper
        begin_sequence(cell.cell, step_input, state, training)


def end_sequence(cell):
    """Forgets the masks drawn by `begin_sequence`; the next batch draws anew."""
    if isinstance(cell, DropoutRNNCell):
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
    if hasattr(cell, "forget_dropout_masks"):
        cell.forget_dropout_masks()
    for inner in getattr(cell, "cells", None) or [getattr(cell, "cell", None)]:
        if isinstance(inner, keras.layers.Layer):
            end_sequence(inner)
