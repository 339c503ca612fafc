"""`tfrnn.RNN`: tfrnn's unrolls as a Keras 3 layer, with masks and per-step states."""

import keras
import numpy as np
import tensorflow as tf
from keras.src.utils import tracking

from tfrnn import checks
from tfrnn import fused
from tfrnn import step
from tfrnn.dynamic import dynamic_rnn
from tfrnn.static import static_rnn

UNROLLS = ("dynamic", "static")


def check_unroll(unroll):
    """`unroll` as given, if it is "dynamic", "static" or an int k >= 1."""
    if isinstance(unroll, bool):
        raise ValueError(
            f"tfrnn.RNN: unroll={unroll} is Keras's boolean; tfrnn.RNN takes "
            "unroll='static' (Keras's True), unroll='dynamic' (Keras's False) or "
            "an int k (a while loop over blocks of k unrolled steps)."
        )
    if isinstance(unroll, (int, np.integer)) and unroll >= 1:
        return int(unroll)
    if unroll in UNROLLS:
        return unroll
    raise ValueError(
        f"tfrnn.RNN: unroll must be 'dynamic', 'static' or an int k >= 1; got "
        f"{unroll!r}."
    )


def state_entries(state):
    """The state nest's top-level entries, as Keras's `return_state` lists them:
    `[state]` for a tensor, `[h, c]` for an LSTM, one entry per layer for a stack."""
    return list(state) if isinstance(state, (list, tuple)) else [state]


@keras.saving.register_keras_serializable(package="tfrnn")
class RNN(keras.layers.Layer):
    """Runs a Keras RNN cell with `tfrnn.dynamic_rnn` or `tfrnn.static_rnn`.

    ```
    x = reverse(inputs) if go_backwards          # and the mask with them
    for t in steps:                              # the unroll `unroll` names
        output[t], state = cell(x[t], state)
        if mask[b, t] is False:                  # per row b, any mask pattern
            output[t][b] = 0; state[b] = previous state[b]
    return output (every step's, or each row's last valid one), ...
    ```

    >>> layer = tfrnn.RNN(keras.layers.GRUCell(3), return_sequences=True)
    >>> mask = tf.constant([[True, True, False], [True, False, True]])
    >>> outputs = layer(tf.ones([2, 3, 4]), mask=mask)
    >>> bool(tf.reduce_all(outputs[0, 2] == 0.0))   # a masked step: zeros
    True

    The padding rule is TF1's: a masked step outputs zeros and copies the
    state through (`keras.layers.RNN(..., zero_output_for_mask=True)`), where
    `keras.layers.RNN`'s default repeats the previous output. The final state
    is the same under both rules: the state after each row's last valid step.

    `return_sequences=False` returns each row's last *valid* output (its output
    at its last unmasked step, as Keras does), not `outputs[:, -1]`, which is
    zeros for every right-padded row. `keras.layers.RNN(...,
    zero_output_for_mask=True, return_sequences=False)` returns those zeros:
    `Embedding(mask_zero=True)` -> that layer -> `Dense` stays at chance on a
    task `tfrnn.RNN` learns (tests/test_layer_keras.py). Against
    `keras.layers.RNN(..., zero_output_for_mask=True)` under random masks, and
    in `Bidirectional`, outputs, states and gradients are equal to the bit.

    Args:
      cell: a Keras RNN cell (`SimpleRNNCell`, `GRUCell`, `LSTMCell`,
        `StackedRNNCells`) or a tfrnn cell (`tfrnn.LSTMCell`,
        `tfrnn.MultiRNNCell`, `tfrnn.DropoutWrapper`).
      unroll: `"dynamic"` (`tfrnn.dynamic_rnn`: a `tf.while_loop`, any T),
        `"static"` (`tfrnn.static_rnn`: every step in the graph, T fixed when
        the layer is built) or an int k (`dynamic_rnn(unroll=k)`: a while loop
        over blocks of k unrolled steps, any T).
      return_sequences: every step's output `[batch, time, units]`, or only
        each row's last valid output `[batch, units]`.
      return_state: also return the final state, as Keras does:
        `[output, *states]`, states being the top-level entries of the cell's
        state (`[h, c]` for an LSTM, one entry per layer for a stack).
      return_all_states: also return every step's state, entries shaped as
        the final state's with a time axis: `[batch, time, size]`. They come
        after the output and the final states: `[output, *states,
        *all_states]` (`[output, *all_states]` without `return_state`). At a
        masked step the state is the one copied through.
      go_backwards: read the sequence (and the mask) from its last step to its
        first; outputs and per-step states come in that reversed order.
      time_major: inputs and per-step results are `[time, batch, ...]`; a mask
        stays `[batch, time]`.
      stateful: keep the final state between calls, as `keras.layers.RNN(...,
        stateful=True)` does: each call without `initial_state` starts from
        the state the previous call ended with (no gradient crosses calls),
        until `reset_states()` sets it to zeros; the batch size must be fixed
        (`keras.Input(batch_shape=...)`). Truncated backpropagation through
        time with `fit`: consecutive chunks of the same streams, in order.
      kernel: `"auto"`, `"fused"` or `"generic"`, as `tfrnn.dynamic_rnn`'s
        (the while-loop unrolls only: "fused" with `unroll="static"` is an
        error); `kernel_ran` says which one runs.
      **kwargs: Keras layer arguments (`name`, `dtype`, ...).

    Call arguments:
      sequences: `[batch, time, features]` (`[time, batch, features]` when
        `time_major`).
      initial_state: the initial state, as `return_state` lists it (a tensor,
        `[h, c]`, one entry per layer); zeros by default.
      mask: `[batch, time]` bool, True for the steps to run; Keras passes the
        mask of `Embedding(mask_zero=True)` or `Masking` itself. Other dtypes
        are refused, as by the functions (`keras.layers.RNN` casts them, any
        nonzero value counting): pass `tf.cast(mask, tf.bool)`. Integer
        `sequences` are refused too (Keras's cells promote them to floats).
      sequence_length: int `[batch]` valid lengths (TF1's argument), the same
        as a right-padded mask (and combined with `mask` when both are given).
      training: passed to the cell (dropout).

    The output mask is the input mask when `return_sequences` (reversed with
    `go_backwards`, as the outputs are), else None.
    """

    def __init__(
        self,
        cell,
        unroll="dynamic",
        return_sequences=False,
        return_state=False,
        return_all_states=False,
        go_backwards=False,
        time_major=False,
        stateful=False,
        kernel="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        checks.rnn_cell(cell, "tfrnn.RNN")
        self.cell = cell
        self.unroll = check_unroll(unroll)
        self.kernel = fused.check_kernel(kernel, "tfrnn.RNN")
        if kernel == "fused":
            if self.unroll == "static":
                raise ValueError(
                    "tfrnn.RNN: kernel='fused' runs a while loop over the sequence; "
                    "unroll='static' unrolls the cell instead. Use unroll='dynamic' "
                    "(or an int k) with kernel='fused', or kernel='generic'."
                )
            fused.choose(kernel, cell, where="tfrnn.RNN")  # refuses a cell it cannot fuse
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.return_all_states = return_all_states
        self.go_backwards = go_backwards
        self.time_major = time_major
        self.stateful = stateful  # keras.layers.Bidirectional reads both
        self.states = None  # stateful: the state's leaves, as variables
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.built_time_steps = None

    @property
    def kernel_ran(self):
        """"fused" or "generic": the kernel this layer's calls run."""
        if self.unroll == "static":
            return "generic"
        return fused.choose(self.kernel, self.cell, where="tfrnn.RNN")

    @property
    def time_axis(self):
        return 0 if self.time_major else 1

    def build(
        self, sequences_shape, initial_state_shape=None, sequence_length_shape=None
    ):
        sequences_shape = tuple(sequences_shape)
        time_steps = sequences_shape[self.time_axis]
        if self.unroll == "static":
            if time_steps is None:
                raise ValueError(
                    f"tfrnn.RNN(unroll='static') needs the number of time steps "
                    f"when it is built, but its inputs have shape {sequences_shape}. "
                    "Give keras.Input(shape=(T, features)), or use "
                    "unroll='dynamic' (or an int k) for sequences of any length."
                )
            self.built_time_steps = time_steps
        batch = sequences_shape[1 - self.time_axis]
        if not self.cell.built:
            self.cell.build((batch,) + sequences_shape[2:])
        if self.stateful and self.states is None:
            if batch is None:
                raise ValueError(
                    "tfrnn.RNN(stateful=True) keeps one state per row, so it needs "
                    f"the batch size when it is built; its inputs have shape "
                    f"{sequences_shape}. Give keras.Input(batch_shape=(B, T, features))."
                )
            self._create_states(batch)

    @tracking.no_automatic_dependency_tracking
    def _create_states(self, batch):
        """The stateful layer's state leaves: zeros `[batch, size]`, not
        weights (not trained, not saved), as `keras.layers.RNN` keeps them."""
        self.states = [
            keras.Variable(tf.zeros([batch, size]), trainable=False,
                           dtype=self.variable_dtype, name="rnn_state")
            for size in tf.nest.flatten(self.cell.state_size)
        ]  # fmt: skip

    def reset_states(self):
        """Sets a stateful layer's state to zeros."""
        for leaf in self.states or []:
            leaf.assign(tf.zeros_like(leaf))

    reset_state = reset_states  # Keras 3's name

    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=None,
        sequence_length=None,
    ):
        self._check_time_steps(sequences.shape[self.time_axis])
        mask, sequence_length = self._step_mask(sequences, mask, sequence_length)
        if self.go_backwards:
            sequences = tf.reverse(sequences, [self.time_axis])
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = mask
        if isinstance(self.unroll, int):
            kwargs["unroll"] = self.unroll
        if self.unroll != "static":
            kwargs["kernel"] = self.kernel
        unroll = static_rnn if self.unroll == "static" else dynamic_rnn
        if self.stateful and initial_state is None:
            initial_state = [leaf.value for leaf in self.states]
        with checks.called_as("tfrnn.RNN"):
            results = unroll(
                self.cell,
                sequences,
                initial_state=self._initial_state(initial_state),
                sequence_length=sequence_length,
                time_major=self.time_major,
                return_all_states=self.return_all_states,
                return_sequences=self.return_sequences,
                training=training,
                **kwargs,
            )
        if self.stateful:
            for leaf, value in zip(self.states, tf.nest.flatten(results[1]), strict=True):
                leaf.assign(tf.cast(value, leaf.dtype))
        results = tf.nest.map_structure(
            lambda x: tf.cast(x, self.compute_dtype), results
        )
        return self._keras_structure(*results)  # (output, final_state[, all_states])

    def _check_time_steps(self, time_steps):
        built = self.built_time_steps
        if built is not None and time_steps is not None and time_steps != built:
            raise ValueError(
                f"tfrnn.RNN(unroll='static') was built for T={built} time steps and "
                f"got T={time_steps}: a static unroll holds each of its steps in "
                f"the graph. Feed sequences of {built} steps (pad or cut them), or "
                "use unroll='dynamic' (or an int k) for sequences of any length."
            )

    def _step_mask(self, sequences, mask, sequence_length):
        """`(mask, sequence_length)` for the unroll (which takes both).

        Keras masks are `[batch, time]` whatever the layout (the unrolls take
        `[time, batch]` when time-major). Read backwards, lengths become the
        mask they stand for and are reversed with it, as Keras reverses masks;
        the unroll then sees no lengths, so they are checked here as it would.
        """
        if mask is not None:
            mask = checks.bool_mask(tf.nest.flatten(mask)[0], "tfrnn.RNN")
        if sequence_length is not None and self.go_backwards:
            shape = sequences.shape
            batch_size = shape[1 - self.time_axis]
            time_steps = shape[self.time_axis]
            if batch_size is None:
                batch_size = tf.shape(sequences)[1 - self.time_axis]
            if time_steps is None:
                time_steps = tf.shape(sequences)[self.time_axis]
            lengths = checks.sequence_length(
                sequence_length, batch_size, time_steps, "tfrnn.RNN"
            )
            length_mask = tf.sequence_mask(lengths, time_steps)
            mask = length_mask if mask is None else mask & length_mask
            sequence_length = None
        if mask is not None and self.go_backwards:
            mask = tf.reverse(mask, [1])
        if mask is not None and self.time_major:
            mask = tf.transpose(mask)
        return mask, sequence_length

    def _initial_state(self, initial_state):
        """The given state (as `return_state` lists it) in the cell's structure."""
        if initial_state is None:
            return None
        leaves = tf.nest.flatten(initial_state)
        sizes = tf.nest.flatten(self.cell.state_size)
        if len(leaves) != len(sizes):
            raise ValueError(
                f"tfrnn.RNN: initial_state holds {len(leaves)} tensors but the "
                f"{type(self.cell).__name__}'s state has {len(sizes)} (state_size "
                f"{self.cell.state_size}); give them in the order the layer returns "
                "them with return_state=True."
            )
        dtype = step.compute_dtype(self.cell, self.compute_dtype)
        leaves = [tf.cast(leaf, dtype) for leaf in leaves]
        return tf.nest.pack_sequence_as(self.cell.state_size, leaves)

    def _keras_structure(self, output, final_state, all_states=None):
        """`output`, or `(output, *states, *all_states)` as the flags ask."""
        if not (self.return_state or self.return_all_states):
            return output
        results = [output]
        if self.return_state:
            results += state_entries(final_state)
        if self.return_all_states:
            results += state_entries(all_states)
        return tuple(results)

    def compute_output_shape(
        self, sequences_shape, initial_state_shape=None, sequence_length_shape=None
    ):
        if self.time_major:
            time_steps, batch = sequences_shape[:2]
        else:
            batch, time_steps = sequences_shape[:2]

        def per_step(size):
            size = int(size)
            if self.time_major:
                return (time_steps, batch, size)
            return (batch, time_steps, size)

        output_size = step.output_size(self.cell)
        output = (batch, output_size)
        if self.return_sequences:
            output = per_step(output_size)
        entries = state_entries(self.cell.state_size)
        final = [tf.nest.map_structure(lambda s: (batch, int(s)), e) for e in entries]
        every_step = [tf.nest.map_structure(per_step, e) for e in entries]
        return self._keras_structure(output, final, every_step)

    def compute_mask(self, sequences, mask=None):
        output_mask = None
        if mask is not None and self.return_sequences:
            output_mask = tf.nest.flatten(mask)[0]
            if self.go_backwards:
                output_mask = keras.ops.flip(output_mask, axis=1)
        if not (self.return_state or self.return_all_states):
            return output_mask
        entries = len(state_entries(self.cell.state_size))
        copies = int(self.return_state) + int(self.return_all_states)
        return (output_mask,) + (None,) * (entries * copies)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "unroll": self.unroll,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "return_all_states": self.return_all_states,
            "go_backwards": self.go_backwards,
            "time_major": self.time_major,
            "stateful": self.stateful,
            "kernel": self.kernel,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(
            config["cell"], custom_objects=custom_objects
        )
        return cls(**config)
