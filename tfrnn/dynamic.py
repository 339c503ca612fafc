"""`dynamic_rnn`: one cell inside a `tf.while_loop` over `TensorArray`s."""

import tensorflow as tf

from tfrnn import checks
from tfrnn import step


def dynamic_rnn(
    cell,
    inputs,
    initial_state=None,
    sequence_length=None,
    time_major=False,
    return_all_states=False,
    parallel_iterations=None,
    swap_memory=False,
    *,
    return_sequences=True,
    dtype=None,
    training=None,
    scope=None,
):
    """Runs `cell` over a sequence in a loop whose graph does not grow with time.

    TF1 `tf.nn.dynamic_rnn`, Keras `unroll=False`: one copy of the cell inside
    a `tf.while_loop` that reads step inputs from a `TensorArray` and writes
    step outputs to another. The number of steps is read at run time, so one
    `tf.function` traced with a `None` time dimension serves every length.

    ```
    state = initial_state or zero_state(cell, batch)
    t = 0
    while t < max(sequence_length):         # or T when no lengths are given
        output[t], state = cell(inputs[t], state)
        if t >= sequence_length[b]:         # per row b, TF1's padding rule
            output[t][b] = 0; state[b] = previous state[b]
        t += 1
    output[t:] = 0                          # steps past every row's end
    return outputs, state                   # state: after step len[b]-1
    ```

    >>> cell = keras.layers.GRUCell(3)
    >>> outputs, state = tfrnn.dynamic_rnn(cell, tf.ones([2, 5, 4]),
    ...                                    sequence_length=[5, 2])
    >>> bool(tf.reduce_all(outputs[1, 2:] == 0))      # zeros past the end
    True
    >>> bool(tf.reduce_all(state[1] == outputs[1, 1]))  # state at len - 1
    True

    Arguments, results and semantics are those of `tfrnn.static_rnn` (same
    step function, same padding rule), except that the time dimension may be
    unknown until run time and list inputs are not taken.

    Args:
      cell: any Keras 3 RNN cell or tfrnn cell.
      inputs: `[batch, time, features]`, or `[time, batch, features]` when
        `time_major`.
      initial_state: a nest shaped like `cell.state_size`; zeros by default.
      sequence_length: optional int32/int64 `[batch]` valid lengths, each in
        `[0, time]`; the loop stops after `max(sequence_length)` steps.
      time_major: whether `inputs` and `outputs` are `[time, batch, ...]`.
      return_all_states: also return every step's state, `[batch, time, size]`
        tensors (past the longest row, copies of the final state).
      return_sequences: False returns only the last step's output,
        `outputs[:, -1]` (zeros for a row shorter than the inputs), and the
        loop carries that one output instead of writing every step's.
      parallel_iterations: `tf.while_loop`'s (default 32).
      swap_memory: let the loop swap activations kept for backprop from GPU
        to host memory (long sequences that do not fit on the GPU).
      dtype: dtype of the default initial state (by default the cell's
        compute dtype, else the inputs').
      training: passed to the cell (dropout is active only when True).
      scope: name scope for the ops.

    Returns:
      `(outputs, final_state)`, or `(outputs, final_state, all_states)`.
    """
    with tf.name_scope(scope or "dynamic_rnn"):
        inputs = checks.sequence_tensor(inputs, time_major, "dynamic_rnn")
        if not time_major:
            inputs = tf.transpose(inputs, [1, 0, 2])
        time_steps = tf.shape(inputs)[0]
        batch_size = inputs.shape[1]
        if batch_size is None:
            batch_size = tf.shape(inputs)[1]
        state, lengths = checks.unroll_arguments(
            cell,
            batch_size,
            inputs.shape[2],
            time_steps,
            dtype or step.compute_dtype(cell, inputs.dtype),
            initial_state,
            sequence_length,
            "dynamic_rnn",
        )
        if lengths is None:
            loop_steps = time_steps
        else:  # as TF1: at least one step, so that every output has a shape
            loop_steps = tf.minimum(time_steps, tf.maximum(1, tf.reduce_max(lengths)))

        step.begin_sequence(
            cell,
            tf.zeros([batch_size, inputs.shape[2]], inputs.dtype),
            state,
            training,
        )
        step_fn = step.step_function(cell, training)
        step_input_shape = inputs.shape[1:]
        input_ta = tf.TensorArray(
            inputs.dtype, size=time_steps, element_shape=step_input_shape
        ).unstack(inputs)
        output_ta = tf.TensorArray(
            step.compute_dtype(cell, inputs.dtype),
            size=loop_steps if return_sequences else 1,
            element_shape=[inputs.shape[1], step.output_size(cell)],
        )
        state_tas = tf.nest.map_structure(
            lambda s: tf.TensorArray(s.dtype, size=loop_steps, element_shape=s.shape),
            state,
        )

        def body(time, state, output_ta, state_tas):
            step_input = input_ta.read(time)
            step_input.set_shape(step_input_shape)
            output, new_state = step.rnn_step(step_fn, step_input, state, time, lengths)
            output_ta = output_ta.write(time if return_sequences else 0, output)
            if return_all_states:
                state_tas = tf.nest.map_structure(
                    lambda ta, s: ta.write(time, s), state_tas, new_state
                )
            return time + 1, new_state, output_ta, state_tas

        _, state, output_ta, state_tas = tf.while_loop(
            lambda time, *_: time < loop_steps,
            body,
            (tf.constant(0), state, output_ta, state_tas),
            parallel_iterations=parallel_iterations or 32,
            swap_memory=swap_memory,
            maximum_iterations=time_steps,
        )
        step.end_sequence(cell)

        steps_left = time_steps - loop_steps
        if return_sequences:
            outputs = output_ta.stack()
            padding = tf.zeros(
                tf.concat([[steps_left], tf.shape(outputs)[1:]], 0), outputs.dtype
            )
            outputs = tf.concat([outputs, padding], axis=0)
            if not time_major:
                outputs = tf.transpose(outputs, [1, 0, 2])
        else:  # step T-1's output: zeros when every row ended before it
            last = output_ta.read(0)
            outputs = tf.where(steps_left > 0, tf.zeros_like(last), last)
        if not return_all_states:
            return outputs, state

        def all_steps(ta, final):
            per_step = ta.stack()
            copies = tf.repeat(final[tf.newaxis], steps_left, axis=0)
            per_step = tf.concat([per_step, copies], axis=0)
            return per_step if time_major else tf.transpose(per_step, [1, 0, 2])

        return outputs, state, tf.nest.map_structure(all_steps, state_tas, state)
