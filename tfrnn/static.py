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
    for t in range(T):                      # T known when the graph is built
        output[t], state = cell(inputs[t], state)
        if t >= sequence_length[b]:         # per row b, TF1's padding rule
            output[t][b] = 0; state[b] = previous state[b]
    return outputs, state                   # state: after step len[b]-1
    ```

    >>> cell = keras.layers.SimpleRNNCell(3)
    >>> outputs, state = tfrnn.static_rnn(cell, tf.ones([2, 5, 4]))
    >>> outputs.shape, state.shape
    (TensorShape([2, 5, 3]), TensorShape([2, 3]))

    The final state of a single-layer vanilla RNN or GRU is its last output;
    that of an LSTM is `[h, c]` with only `h` equal to the last output; a
    stack's state has one entry per layer, of which only the top's `h` is the
    output. With `sequence_length`, outputs past a row's end are zeros (Keras's
    masking instead repeats the last output) and the final state is the state
    after the row's last valid step (the initial state for length 0).

    Args:
      cell: any Keras 3 RNN cell (`SimpleRNNCell`, `GRUCell`, `LSTMCell`,
        `StackedRNNCells`) or a tfrnn cell.
      inputs: `[batch, time, features]` (`[time, batch, features]` when
        `time_major`) with a statically known time dimension, or TF1's form: a
        Python list of `[batch, features]` tensors.
      initial_state: a nest shaped like `cell.state_size`; zeros by default.
      sequence_length: optional int32/int64 `[batch]` valid lengths, each in
        `[0, time]`.
      time_major: whether `inputs` and `outputs` are `[time, batch, ...]`.
      return_all_states: also return every step's state.
      return_sequences: False returns only the last step's output,
        `outputs[:, -1]` (`[batch, output_size]`), as Keras's
        `return_sequences=False` (but zeros for a row shorter than the inputs,
        where Keras's mask gives the row's last valid output).
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
        built for, or an `initial_state` or `sequence_length` that does not
        fit.
    """
    with tf.name_scope(scope or "static_rnn"):
        list_inputs = isinstance(inputs, (list, tuple))
        if list_inputs:
            inputs = checks.step_list(inputs)
            first_step = inputs[0]
            time_steps = len(inputs)
        else:
            inputs = checks.sequence_tensor(inputs, time_major, "static_rnn")
            time_axis = 0 if time_major else 1
            time_steps = inputs.shape[time_axis]
            if time_steps is None:
                raise ValueError(
                    "static_rnn: the number of time steps must be known when the "
                    f"graph is built, but inputs have shape {inputs.shape}. Use "
                    "tfrnn.dynamic_rnn for sequences whose length varies, or fix "
                    "the time dimension (e.g. tf.TensorSpec([None, 28, 28]) in the "
                    "tf.function's input_signature)."
                )
            first_step = tf.gather(inputs, 0, axis=time_axis)
        batch_size = first_step.shape[0]
        if batch_size is None:
            batch_size = tf.shape(first_step)[0]
        state, lengths = checks.unroll_arguments(
            cell,
            batch_size,
            first_step.shape[-1],
            time_steps,
            dtype or step.compute_dtype(cell, first_step.dtype),
            initial_state,
            sequence_length,
            "static_rnn",
        )
        step.begin_sequence(cell, first_step, state, training)
        step_fn = step.step_function(cell, training)
        steps = inputs if list_inputs else tf.unstack(inputs, axis=time_axis)
        outputs, all_states = [], []
        for time, step_input in enumerate(steps):
            output, state = step.rnn_step(step_fn, step_input, state, time, lengths)
            outputs.append(output)
            all_states.append(state)
        step.end_sequence(cell)
        if not return_sequences:
            outputs = outputs[-1]
        elif not list_inputs:
            outputs = tf.stack(outputs, axis=time_axis)
        if not return_all_states:
            return outputs, state
        if not list_inputs:
            all_states = tf.nest.map_structure(
                lambda *per_step: tf.stack(per_step, axis=time_axis), *all_states
            )
        return outputs, state, all_states
