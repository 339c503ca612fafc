"""`dynamic_rnn`: one cell inside a `tf.while_loop` over `TensorArray`s."""

import tensorflow as tf

from tfrnn import checks
from tfrnn import fused
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
    mask=None,
    unroll=1,
    return_sequences=True,
    dtype=None,
    training=None,
    scope=None,
    kernel="auto",
):
    """Runs `cell` over a sequence in a loop whose graph does not grow with time.

    TF1 `tf.nn.dynamic_rnn`, Keras `unroll=False`: the cell inside a
    `tf.while_loop` that reads step inputs from a `TensorArray` and writes
    step outputs to another. The number of steps is read at run time, so one
    `tf.function` traced with a `None` time dimension serves every length.
    With `unroll=k` each loop iteration runs k steps, unrolled in its body
    (JAX's `lax.scan(unroll=k)`): k = 1 is the plain loop, k >= T is a
    static unroll inside one iteration; the graph grows with k, never with T.

    ```
    state = initial_state or zero_state(cell, batch)
    n = last valid step of any row + 1          # T without lengths or mask
    for block in range(n // k):                 # a while loop, k steps unrolled
        for t in block * k, ..., block * k + k - 1:
            output[t], state = step(t, state)
    for t in n // k * k, ..., n - 1:            # a while loop of one step
        output[t], state = step(t, state)
    output[n:] = 0                              # steps no row needs

    step(t, state):
        output, new_state = cell(inputs[t], state)
        valid = mask[b, t] and t < sequence_length[b]   # per row b; only
        if not valid:                                   # with lengths or mask
            output[b] = 0; new_state[b] = state[b]
        else:
            last[b] = output[b]                 # for return_sequences=False
    return outputs, state                       # state: after the last valid step
    ```

    >>> cell = keras.layers.GRUCell(3)
    >>> outputs, state = tfrnn.dynamic_rnn(cell, tf.ones([2, 5, 4]),
    ...                                    sequence_length=[5, 2])
    >>> bool(tf.reduce_all(outputs[1, 2:] == 0))      # zeros past the end
    True
    >>> bool(tf.reduce_all(state[1] == outputs[1, 1]))  # state at len - 1
    True
    >>> last, _ = tfrnn.dynamic_rnn(cell, tf.ones([2, 5, 4]),
    ...                             sequence_length=[5, 2], unroll=2,
    ...                             return_sequences=False)
    >>> bool(tf.reduce_all(last == state))             # each row's last valid
    True

    Arguments, results and semantics are those of `tfrnn.static_rnn` (same
    step function, same rule for masked and padded steps, same last valid
    output), except that the time dimension may be unknown until run time and
    list inputs are not taken.

    Args:
      cell: any Keras 3 RNN cell or tfrnn cell.
      inputs: floating-point `[batch, time, features]`, or `[time, batch,
        features]` when `time_major`.
      initial_state: a nest shaped like `cell.state_size`; zeros by default.
      sequence_length: optional int32/int64 `[batch]` valid lengths, each in
        `[0, time]`; the loop stops after `max(sequence_length)` steps. Under
        XLA (`jit_compile=True`) lengths must be known when the graph is built
        (they are checked then); pass others as a `mask`.
      time_major: whether `inputs` and `outputs` are `[time, batch, ...]`.
      return_all_states: also return every step's state, `[batch, time, size]`
        tensors (past the last valid step, copies of the final state).
      parallel_iterations: `tf.while_loop`'s (default 32).
      swap_memory: let the loop swap activations kept for backprop from GPU
        to host memory (long sequences that do not fit on the GPU).
      mask: optional bool `[batch, time]` (`[time, batch]` when `time_major`),
        True where a step counts, as a Keras mask; any pattern (other dtypes
        are refused: `tf.cast(mask, tf.bool)`). With `sequence_length` too,
        a step counts where both say so. The loop stops after the last step
        that counts in any row.
      unroll: steps per loop iteration, an int >= 1. T need not be a multiple.
      return_sequences: False returns only each row's last valid output
        (zeros for a row with none), carried in the loop instead of writing
        every step's output; `outputs[:, -1]` without lengths or a mask.
      dtype: dtype of the default initial state (by default the cell's
        compute dtype, else the inputs').
      training: passed to the cell (dropout is active only when True).
      scope: name scope for the ops.
      kernel: "generic" runs the cell's own step in the loop above;
        "fused" a whole-sequence kernel with the same results (`tfrnn.fused`:
        Keras LSTM and GRU cells, tfrnn's plain LSTMCell, stacks of them; a
        ValueError for other cells); "auto" the fused kernel where it was
        measured faster (`tfrnn.fused.auto_chooses`: a layer of at least 64
        units), else the generic loop.

    Returns:
      `(outputs, final_state)`, or `(outputs, final_state, all_states)`.
    """
    with tf.name_scope(scope or "dynamic_rnn"):
        name = checks.caller("dynamic_rnn")
        checks.rnn_cell(cell, name)
        checks.time_major(time_major, name)
        unroll = checks.unroll_factor(unroll, name)
        kernel = fused.check_kernel(kernel, name)
        inputs = checks.sequence_tensor(inputs, time_major, name)
        if not time_major:
            inputs = tf.transpose(inputs, [1, 0, 2])
        batch_size = inputs.shape[1]
        if batch_size is None:
            batch_size = tf.shape(inputs)[1]
        state, valid = checks.unroll_arguments(
            cell,
            batch_size,
            inputs.shape[2],
            inputs.shape[0] or tf.shape(inputs)[0],
            dtype or step.compute_dtype(cell, inputs.dtype),
            initial_state,
            sequence_length,
            mask,
            time_major,
            name,
        )
        options = dict(parallel_iterations=parallel_iterations or 32, swap_memory=swap_memory)
        if fused.choose(kernel, cell, name) == "fused":
            outputs, state, all_states = fused.fused_rnn(
                cell, inputs, state, valid, unroll, options, return_sequences, return_all_states
            )
        else:
            outputs, state, all_states = _generic(
                cell, inputs, state, valid, unroll, options, return_sequences,
                return_all_states, training,
            )  # fmt: skip
        if return_sequences and not time_major:
            outputs = tf.transpose(outputs, [1, 0, 2])
        if not return_all_states:
            return outputs, state
        if not time_major:
            all_states = tf.nest.map_structure(
                lambda s: tf.transpose(s, [1, 0, 2]), all_states
            )
        return outputs, state, all_states


def _generic(cell, inputs, state, valid, unroll, options, return_sequences,
             return_all_states, training):
    """The cell's own step in `_BlockLoop`; results as `fused.fused_rnn`'s."""
    batch_size = inputs.shape[1] or tf.shape(inputs)[1]
    zeros = tf.zeros([batch_size, inputs.shape[2]], inputs.dtype)
    step.begin_sequence(cell, zeros, state, training)
    loop = _BlockLoop(
        step.step_function(cell, training),
        inputs,
        valid,
        unroll,
        step.compute_dtype(cell, inputs.dtype),
        step.output_size(cell),
    )
    results = loop.run(
        state,
        return_sequences,
        return_all_states,
        options["parallel_iterations"],
        options["swap_memory"],
    )
    step.end_sequence(cell)
    return results


class _BlockLoop:
    """Loops over time-major inputs in blocks of `unroll` steps, then one step
    at a time for the steps left over.

    The loop runs `steps_to_run` steps (through the last valid step of any
    row): `loop_steps // unroll` iterations of a block of `unroll` steps
    unrolled, then the `loop_steps % unroll` steps left in a loop of one step,
    so no step past the inputs' end is ever run and, without lengths or a
    mask, no step pays for masking. A block reads its inputs with one
    `TensorArray` read (a block of `unroll` steps; a step left reads its block
    and takes its step) and writes each step's output. After the loops,
    outputs are padded with zeros to the inputs' length.
    """

    def __init__(self, step_fn, inputs, valid, unroll, output_dtype, output_size):
        self.step_fn = step_fn
        self.unroll = unroll
        self.valid = valid
        self.time_steps = tf.shape(inputs)[0]
        self.static_time = inputs.shape[0]
        self.loop_steps = step.steps_to_run(valid, self.time_steps)
        self.block_steps = self.loop_steps // unroll * unroll
        self.step_input_shape = inputs.shape[1:]
        self.output_spec = ([inputs.shape[1], output_size], output_dtype)
        self.batch_size = inputs.shape[1] or tf.shape(inputs)[1]
        self.input_ta = self._input_blocks(inputs)

    def _input_blocks(self, inputs):
        """A `TensorArray` of `[unroll, batch, features]` blocks (of steps when
        `unroll` is 1), the last one padded with zeros that no step reads."""
        element_shape, k = self.step_input_shape, self.unroll
        if k > 1:
            blocks = -(-self.time_steps // k)  # rounded up
            if self.static_time is None or self.static_time % k:
                padding = blocks * k - self.time_steps
                inputs = tf.pad(inputs, [[0, padding], [0, 0], [0, 0]])
            block_shape = tf.concat([[blocks, k], tf.shape(inputs)[1:]], 0)
            inputs = tf.reshape(inputs, block_shape)
            element_shape = tf.TensorShape([k]).concatenate(element_shape)
        return tf.TensorArray(
            inputs.dtype,
            size=tf.shape(inputs)[0],
            element_shape=element_shape,
            clear_after_read=False,  # the steps left read their block each
        ).unstack(inputs)

    def _loops(self):
        """`(blocks, steps_left)`: which of the two loops the graph needs."""
        time, k, masked = self.static_time, self.unroll, self.valid is not None
        blocks = k > 1 and (time is None or time >= k)
        steps_left = k > 1 and (time is None or masked or time % k != 0)
        return blocks or k == 1, steps_left

    def _block(self, time, state, outputs, state_tas):
        """`unroll` steps through `rnn_step`, from step `time` (a multiple of
        `unroll`): one read of their inputs, no masking without lengths or a mask."""
        k = self.unroll
        step_inputs = tf.unstack(self.input_ta.read(time // k), k)
        valid = [None] * k
        if self.valid is not None:
            valid = tf.unstack(tf.slice(self.valid, [time, 0], [k, -1]), k)
        for offset, (step_input, step_valid) in enumerate(zip(step_inputs, valid)):
            step_input.set_shape(self.step_input_shape)
            state, outputs, state_tas = self._step_from(
                time + offset, step_input, step_valid, state, outputs, state_tas
            )
        return time + k, state, outputs, state_tas

    def _step(self, time, state, outputs, state_tas):
        """One step through `rnn_step`, at step `time`."""
        if self.unroll == 1:
            step_input = self.input_ta.read(time)
        else:
            block = self.input_ta.read(time // self.unroll)
            step_input = tf.gather(block, time % self.unroll)
        step_input.set_shape(self.step_input_shape)
        valid = None if self.valid is None else tf.gather(self.valid, time)
        state, outputs, state_tas = self._step_from(
            time, step_input, valid, state, outputs, state_tas
        )
        return time + 1, state, outputs, state_tas

    def _step_from(self, time, step_input, valid, state, outputs, state_tas):
        """Step `time` through `rnn_step`; its output and state written."""
        output, state = step.rnn_step(self.step_fn, step_input, state, valid)
        if isinstance(outputs, tf.TensorArray):
            outputs = outputs.write(time, output)
        else:
            outputs = step.last_valid_output(outputs, output, valid)
        if tf.nest.flatten(state_tas):  # return_all_states
            state_tas = tf.nest.map_structure(
                lambda ta, s: ta.write(time, s), state_tas, state
            )
        return state, outputs, state_tas

    def run(self, state, return_sequences, return_all_states, parallel, swap):
        """`(outputs, final_state, all_states or ())`, time-major."""
        shape, dtype = self.output_spec
        if return_sequences:
            outputs = tf.TensorArray(dtype, size=self.time_steps, element_shape=shape)
        else:  # the last valid output, zeros until a row's first valid step
            outputs = tf.zeros([self.batch_size, shape[1]], dtype)
        state_tas = ()
        if return_all_states:
            state_tas = tf.nest.map_structure(
                lambda s: tf.TensorArray(
                    s.dtype, self.time_steps, element_shape=s.shape
                ),
                state,
            )
        loop_vars = (tf.constant(0), state, outputs, state_tas)
        blocks, steps_left = self._loops()
        options = dict(parallel_iterations=parallel, swap_memory=swap)
        if blocks:
            loop_vars = tf.while_loop(
                lambda time, *_: time < self.block_steps,
                self._block if self.unroll > 1 else self._step,
                loop_vars,
                maximum_iterations=self.time_steps // self.unroll,
                **options,
            )
        if steps_left:
            loop_vars = tf.while_loop(
                lambda time, *_: time < self.loop_steps,
                self._step,
                loop_vars,
                maximum_iterations=self.unroll - 1,
                **options,
            )
        _, state, outputs, state_tas = loop_vars
        if return_sequences:
            stacked = outputs.stack()
            outputs = self._to_input_length(stacked, tf.zeros_like(stacked[0]))
        if return_all_states:  # past the loop: copies of the final state
            state_tas = tf.nest.map_structure(
                lambda ta, final: self._to_input_length(ta.stack(), final),
                state_tas,
                state,
            )
        return outputs, state, state_tas

    def _to_input_length(self, per_step, fill):
        """`per_step[:loop_steps]`, then copies of `fill` for the steps not run."""
        copies = tf.repeat(fill[tf.newaxis], self.time_steps - self.loop_steps, 0)
        result = tf.concat([per_step[: self.loop_steps], copies], axis=0)
        result.set_shape([self.static_time] + per_step.shape[1:])  # T when known
        return result
