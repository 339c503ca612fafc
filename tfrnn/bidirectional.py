"""Bidirectional RNNs: a forward and a backward unroll, with TF1's length rule.

The backward cell reads each row reversed within its own length
(`tf.reverse_sequence`), so padding is never read first; its outputs are
returned in forward time order, and past a row's end both directions output
zeros. `tfrnn.compat.v1.nn.bidirectional_dynamic_rnn` and
`static_bidirectional_rnn` (TF1's signatures) use the same two helpers.
"""

import tensorflow as tf

from tfrnn import checks
from tfrnn.dynamic import dynamic_rnn
from tfrnn.static import static_rnn


def reverse_time(sequence, sequence_length, time_axis):
    """`sequence` reversed along time, row b within its first `length[b]` steps.

    >>> x = tf.constant([[1, 2, 3], [4, 5, 0]])[..., tf.newaxis]
    >>> reverse_time(x, [3, 2], time_axis=1)[..., 0].numpy().tolist()
    [[3, 2, 1], [5, 4, 0]]
    """
    if sequence_length is None:
        return tf.reverse(sequence, axis=[time_axis])
    return tf.reverse_sequence(
        sequence,
        tf.cast(sequence_length, tf.int64),
        seq_axis=time_axis,
        batch_axis=1 - time_axis,
    )


def reverse_steps(steps, sequence_length):
    """TF1's `_reverse_seq`: a list of `[batch, ...]` steps reversed, each row
    within its length."""
    if sequence_length is None:
        return list(reversed(steps))
    reversed_steps = tf.unstack(reverse_time(tf.stack(steps), sequence_length, 0))
    for step, reversed_step in zip(steps, reversed_steps):
        reversed_step.set_shape(step.shape)
    return reversed_steps


def run_both_directions(run, inputs, reverse, return_sequences=True, reverse_states=None):
    """`run(direction, inputs)` forward and on reversed inputs, results paired.

    `run` returns `(outputs, final_state)` or `(outputs, final_state,
    all_states)`; `reverse(x)` reverses a sequence within each row's length,
    `reverse_states` every-step states (by default `reverse` on each tensor).
    The backward outputs (and every-step states) are put back in forward
    time order, except a `return_sequences=False` output: the backward
    cell's own last valid output.

    Returns `((outputs_fw, outputs_bw), (state_fw, state_bw))`, plus
    `(all_states_fw, all_states_bw)` when `run` returns all states.
    """
    forward = run("fw", inputs)
    backward = list(run("bw", reverse(inputs)))
    if return_sequences:
        backward[0] = reverse(backward[0])
    if len(backward) == 3:
        backward[2] = (reverse_states or (lambda s: tf.nest.map_structure(reverse, s)))(
            backward[2]
        )
    return tuple(zip(forward, backward))


def bidirectional_dynamic_rnn(
    cell_fw,
    cell_bw,
    inputs,
    initial_state_fw=None,
    initial_state_bw=None,
    sequence_length=None,
    time_major=False,
    return_all_states=False,
    parallel_iterations=None,
    swap_memory=False,
    *,
    unroll=1,
    return_sequences=True,
    dtype=None,
    training=None,
    scope=None,
    kernel="auto",
):
    """Runs `cell_fw` over `inputs` and `cell_bw` over them reversed, per row.

    ```
    outputs_fw, state_fw = dynamic_rnn(cell_fw, x, sequence_length=len)
    x_rev = reverse_sequence(x, len)         # row b: x[len[b]-1], ..., x[0], padding
    out_rev, state_bw = dynamic_rnn(cell_bw, x_rev, sequence_length=len)
    outputs_bw = reverse_sequence(out_rev, len)   # back in forward time order
    return (outputs_fw, outputs_bw), (state_fw, state_bw)
    ```

    >>> fw, bw = keras.layers.GRUCell(3), keras.layers.GRUCell(2)
    >>> (out_fw, out_bw), (state_fw, state_bw) = tfrnn.bidirectional_dynamic_rnn(
    ...     fw, bw, tf.ones([2, 5, 4]), sequence_length=[5, 2])
    >>> out_fw.shape, out_bw.shape
    (TensorShape([2, 5, 3]), TensorShape([2, 5, 2]))
    >>> bool(tf.reduce_all(out_bw[1, 2:] == 0))   # zeros past the row's end
    True
    >>> bool(tf.reduce_all(state_bw[1] == out_bw[1, 0]))  # bw ends at time 0
    True

    States are in tfrnn's (Keras's) order: `[h, c]` for an LSTM. Concatenate
    the outputs with `tf.concat([out_fw, out_bw], -1)` for TF1's usual next
    layer. Every argument is `tfrnn.dynamic_rnn`'s, per direction (`unroll=k`:
    k steps per loop iteration in both; `kernel`: the same choice for both,
    each direction's cell judged on its own under "auto"); with
    `return_sequences=False` each direction returns the last valid output it
    produced: the forward output at the row's last step, the backward output
    after reading the row back to time 0 (zeros for a row of length 0).

    Returns:
      `((outputs_fw, outputs_bw), (state_fw, state_bw))`, and
      `(all_states_fw, all_states_bw)` third with `return_all_states` (the
      backward one in forward time order).
    """
    time_axis = 0 if time_major else 1

    def run(direction, x):
        return dynamic_rnn(
            cell_fw if direction == "fw" else cell_bw,
            x,
            initial_state_fw if direction == "fw" else initial_state_bw,
            sequence_length,
            time_major,
            return_all_states,
            parallel_iterations,
            swap_memory,
            unroll=unroll,
            return_sequences=return_sequences,
            dtype=dtype,
            training=training,
            scope=direction,
            kernel=kernel,
        )

    with tf.name_scope(scope or "bidirectional_rnn"), checks.called_as(
        "bidirectional_dynamic_rnn"
    ):
        inputs = tf.convert_to_tensor(inputs)
        return run_both_directions(
            run,
            inputs,
            lambda x: reverse_time(x, sequence_length, time_axis),
            return_sequences,
        )


def static_bidirectional_rnn(
    cell_fw,
    cell_bw,
    inputs,
    initial_state_fw=None,
    initial_state_bw=None,
    sequence_length=None,
    time_major=False,
    return_all_states=False,
    *,
    return_sequences=True,
    dtype=None,
    training=None,
    scope=None,
):
    """`bidirectional_dynamic_rnn` with `tfrnn.static_rnn`: unrolled in the graph.

    `inputs` is a `[batch, time, features]` tensor with a known time
    dimension (time-major with `time_major`), or TF1's list of `[batch,
    features]` steps, in which case outputs (and every-step states) are lists
    too. Results and semantics are `bidirectional_dynamic_rnn`'s.

    >>> fw, bw = keras.layers.SimpleRNNCell(3), keras.layers.SimpleRNNCell(3)
    >>> (out_fw, out_bw), _ = tfrnn.static_bidirectional_rnn(
    ...     fw, bw, [tf.ones([2, 4])] * 5, sequence_length=[5, 0])
    >>> len(out_bw), bool(tf.reduce_all(out_bw[0][1] == 0))
    (5, True)
    """
    list_inputs = isinstance(inputs, (list, tuple))
    time_axis = 0 if time_major or list_inputs else 1

    def run(direction, x):
        return static_rnn(
            cell_fw if direction == "fw" else cell_bw,
            x,
            initial_state_fw if direction == "fw" else initial_state_bw,
            sequence_length,
            time_major,
            return_all_states,
            return_sequences=return_sequences,
            dtype=dtype,
            training=training,
            scope=direction,
        )

    def reverse(x):
        if isinstance(x, (list, tuple)):
            return reverse_steps(list(x), sequence_length)
        return reverse_time(x, sequence_length, time_axis)

    def reverse_states(all_states):
        if not list_inputs:
            return tf.nest.map_structure(reverse, all_states)
        columns = zip(*(tf.nest.flatten(state) for state in all_states))
        columns = [reverse_steps(list(column), sequence_length) for column in columns]
        return [tf.nest.pack_sequence_as(all_states[0], leaves) for leaves in zip(*columns)]

    with tf.name_scope(scope or "bidirectional_rnn"), checks.called_as(
        "static_bidirectional_rnn"
    ):
        if list_inputs:
            inputs = [tf.convert_to_tensor(x) for x in inputs]
        else:
            inputs = tf.convert_to_tensor(inputs)
        return run_both_directions(
            run, inputs, reverse, return_sequences, reverse_states
        )
