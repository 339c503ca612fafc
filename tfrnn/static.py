"""`static_rnn`: the recurrence unrolled into the graph, one tensor per step."""

import tensorflow as tf

from tfrnn import checks
from tfrnn import step


def static_rnn(
    cell,
    inputs,
    initial_state=None,
    sequence_length=None,
    time_major=False,
    return_all_states=False,
    *,
    mask=None,
    return_sequences=True,
    dtype=None,
    training=None,
    scope=None,
):
    """Unrolls `cell` over a sequence whose length is fixed when the graph is built.

    A Python loop over the time steps (TF1 `tf.nn.static_rnn`, Keras
    `unroll=True`): the graph holds one copy of the cell per step, so every
    step's output and state is a tensor of its own.

    ```
    state = initial_state or zero_state(cell, batch)
    last = zeros
    for t in range(T):                      # T known when the graph is built
        output[t], state = cell(inputs[t], state)
        valid = mask[b, t] and t < sequence_length[b]     # per row b
        if not valid:                       # tfrnn's rule (TF1's for lengths)
            output[t][b] = 0; state[b] = previous state[b]
        else:
            last[b] = output[t][b]          # return_sequences=False returns it
    return outputs, state                   # state: after the last valid step
    ```

    >>> cell = keras.layers.SimpleRNNCell(3)
    >>> outputs, state = tfrnn.static_rnn(cell, tf.ones([2, 5, 4]))
    >>> outputs.shape, state.shape
    (TensorShape([2, 5, 3]), TensorShape([2, 3]))

    A masked step (any pattern, not only right padding) outputs zeros and
    copies the state through; `return_sequences=False` gives each row's last
    valid output, which is the state of a vanilla RNN or GRU:

    >>> mask = tf.constant([[True, True, False, True, False],
    ...                     [True, False, False, False, False]])
    >>> outputs, state = tfrnn.static_rnn(cell, tf.ones([2, 5, 4]), mask=mask)
    >>> outputs[:, 2].numpy().tolist()       # masked steps output zeros
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> last, _ = tfrnn.static_rnn(cell, tf.ones([2, 5, 4]), mask=mask,
    ...                            return_sequences=False)
    >>> bool(tf.reduce_all(last == state))   # not outputs[:, -1], zeros here
    True
    >>> bool(tf.reduce_all(last[1] == outputs[1, 0]))
    True

    The final state of a single-layer vanilla RNN or GRU is its last valid
    output; that of an LSTM is `[h, c]` with only `h` equal to it; a stack's
    state has one entry per layer, of which only the top's `h` is the output.
    Outputs at masked steps and past a row's `sequence_length` are zeros
    (TF1's rule; Keras's default masking repeats the last output instead) and
    the final state is the state after the row's last valid step (the initial
    state for a row with none).

    Args:
      cell: any Keras 3 RNN cell (`SimpleRNNCell`, `GRUCell`, `LSTMCell`,
        `StackedRNNCells`) or a tfrnn cell.
      inputs: floating-point `[batch, time, features]` (`[time, batch,
        features]` when `time_major`) with a statically known time dimension,
        or TF1's form: a Python list of `[batch, features]` tensors. Integer
        inputs are refused (Keras's cells would promote them to floats).
      initial_state: a nest shaped like `cell.state_size`; zeros by default.
      sequence_length: optional int32/int64 `[batch]` valid lengths, each in
        `[0, time]`.
      time_major: whether `inputs` and `outputs` are `[time, batch, ...]`.
      return_all_states: also return every step's state.
      mask: optional bool `[batch, time]` (`[time, batch]` when `time_major`;
        `[batch, len(inputs)]` for list inputs), True where a step counts, as
        a Keras mask; any pattern. Other dtypes are refused (where
        `keras.layers.RNN` casts them): pass `tf.cast(mask, tf.bool)`. With `sequence_length` too, a step counts
        where both say so. A right-padded mask equals `sequence_length`.
      return_sequences: False returns only each row's last valid output
        (`[batch, output_size]`: the output at its last unmasked step before
        its length, zeros for a row with none), as Keras's default
        `return_sequences=False` with a mask. Without lengths or a mask it is
        `outputs[:, -1]`.
      dtype: dtype of the default initial state (TF1's argument; by default the
        cell's compute dtype, else the inputs').
      training: passed to the cell (dropout is active only when True).
      scope: name scope for the ops.

    Returns:
      `(outputs, final_state)`, or `(outputs, final_state, all_states)` with
      `return_all_states`. `outputs` is `[batch, time, output_size]` (or
      time-major), and `all_states` a nest like `final_state` of
      `[batch, time, size]` tensors. For list inputs, `outputs` and
      `all_states` are lists with one entry per step.

    Raises:
      ValueError: inputs of the wrong rank, a time dimension unknown when the
        graph is built (use `dynamic_rnn`), a feature size the cell was not
        built for, or an `initial_state`, `sequence_length` or `mask` that
        does not fit.
      TypeError: a cell that is not an RNN cell (a Keras RNN layer, a
        `Dense`), or arguments in TF1's positional order.
    """
    with tf.name_scope(scope or "static_rnn"):
        name = checks.caller("static_rnn")
        checks.rnn_cell(cell, name)
        checks.time_major(time_major, name)
        list_inputs = isinstance(inputs, (list, tuple))
        steps = _steps_of(inputs, time_major, name)
        batch_size = steps[0].shape[0]
        if batch_size is None:
            batch_size = tf.shape(steps[0])[0]
        state, valid = checks.unroll_arguments(
            cell,
            batch_size,
            steps[0].shape[-1],
            len(steps),
            dtype or step.compute_dtype(cell, steps[0].dtype),
            initial_state,
            sequence_length,
            mask,
            time_major and not list_inputs,
            name,
        )
        step.begin_sequence(cell, steps[0], state, training)
        step_fn = step.step_function(cell, training)
        outputs, all_states, last = [], [], None
        for time, step_input in enumerate(steps):
            valid_now = None if valid is None else valid[time]
            output, state = step.rnn_step(step_fn, step_input, state, valid_now)
            if not return_sequences:  # carried: the row's last valid output
                start = tf.zeros_like(output) if last is None else last
                last = step.last_valid_output(start, output, valid_now)
            outputs.append(output)
            all_states.append(state)
        step.end_sequence(cell)
        return _results(
            outputs if return_sequences else last,
            state,
            all_states if return_all_states else None,
            None if list_inputs else (0 if time_major else 1),
        )


def _steps_of(inputs, time_major, name):
    """The inputs as a list of `[batch, features]` tensors, one per step."""
    if isinstance(inputs, (list, tuple)):
        return checks.step_list(inputs, name)
    inputs = checks.sequence_tensor(inputs, time_major, name, takes_lists=True)
    time_axis = 0 if time_major else 1
    if inputs.shape[time_axis] is None:
        raise ValueError(
            f"{name}: the number of time steps must be known when the "
            f"graph is built, but inputs have shape {inputs.shape}. Use "
            "tfrnn.dynamic_rnn (unroll=k for k steps per loop iteration) for "
            "sequences whose length varies, or fix the time dimension (e.g. "
            "tf.TensorSpec([None, 28, 28]) in the tf.function's input_signature)."
        )
    return tf.unstack(inputs, axis=time_axis)


def _results(outputs, state, all_states, time_axis):
    """`(outputs, state[, all_states])`, per-step lists stacked on `time_axis`
    (kept as lists for TF1's list inputs, where `time_axis` is None)."""
    if isinstance(outputs, list) and time_axis is not None:
        outputs = tf.stack(outputs, axis=time_axis)
    if all_states is None:
        return outputs, state
    if time_axis is not None:
        all_states = tf.nest.map_structure(
            lambda *per_step: tf.stack(per_step, axis=time_axis), *all_states
        )
    return outputs, state, all_states
