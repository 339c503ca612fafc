"""TF1's `tf.compat.v1.nn` RNN functions: same names, signatures, results, scopes.

A TF1 program migrates by importing `nn` and renaming nothing else:

    from tfrnn.compat.v1 import nn
    cell = nn.rnn_cell.BasicLSTMCell(100)             # was tf.nn.rnn_cell.BasicLSTMCell
    outputs, state = nn.dynamic_rnn(cell, x, dtype=tf.float32)  # was tf.nn.dynamic_rnn
    logits = tf.matmul(state[1], W) + b               # state is LSTMStateTuple(c, h)

The loops are tfrnn's (`tfrnn.static_rnn`, `tfrnn.dynamic_rnn`, one step
function, TF1's padding rule); this module adds TF1's argument handling and
variable scopes (`rnn`, `bidirectional_rnn/fw`, `bidirectional_rnn/bw`), so
variables are named as TF1 named them and TF1 checkpoints restore.
"""

import tensorflow as tf

from tfrnn import bidirectional
from tfrnn import checks
from tfrnn.compat.v1 import rnn_cell
from tfrnn.compat.v1.rnn_cell_base import assert_like_rnncell
from tfrnn.compat.v1.wrappers import build_variables
from tfrnn.dynamic import dynamic_rnn as _tfrnn_dynamic_rnn
from tfrnn.static import static_rnn as _tfrnn_static_rnn
from tfrnn.step import zero_state

_vs = tf.compat.v1.variable_scope


class _UnrolledCell:
    """What tfrnn's unrolls see of a TF1 cell: its sizes and one step.

    Hides the TF1 cell's own attributes (`built`, a `[F + H, 4H]` `kernel`
    in user cells) from tfrnn's Keras-cell checks.
    """

    def __init__(self, cell):
        self._cell = cell
        self.state_size = cell.state_size
        self.output_size = cell.output_size

    def __call__(self, inputs, state):
        return self._cell(inputs, state)


def _initial_state(cell, initial_state, batch_size, dtype):
    """TF1's rule: the given state, else `cell.zero_state`, which needs `dtype`."""
    if initial_state is not None:
        return initial_state
    if not dtype:
        raise ValueError(
            "If there is no initial_state, you must give a dtype. (TF1's rule: "
            "pass dtype=tf.float32, or an initial_state such as "
            "cell.zero_state(batch_size, tf.float32).)"
        )
    if hasattr(cell, "zero_state"):
        return cell.zero_state(batch_size, dtype)
    return zero_state(cell, batch_size, dtype)  # a Keras cell


def _lengths(sequence_length):
    """TF1 casts `sequence_length` to int32 and wants a vector."""
    if sequence_length is None:
        return None
    lengths = tf.cast(sequence_length, tf.int32)
    if lengths.shape.rank not in (None, 1):
        raise ValueError(
            "sequence_length must be a vector of length batch_size, but saw "
            f"shape: {lengths.shape}"
        )
    return lengths


def _batch_size(step_like, axis):
    return step_like.shape[axis] if step_like.shape[axis] is not None else tf.shape(step_like)[axis]


def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None,
                dtype=None, parallel_iterations=None, swap_memory=False,
                time_major=False, scope=None):
    """TF1's `tf.compat.v1.nn.dynamic_rnn`, in a `tf.while_loop` (tfrnn's).

    Returns `(outputs, state)`: outputs `[batch, time, output_size]` (time
    major if asked), zeros past each row's `sequence_length`; `state` the
    state after each row's last valid step, in the cell's structure
    (`LSTMStateTuple(c, h)` for an LSTM). Variables are made in
    `variable_scope(scope or "rnn")`. `inputs` must be one tensor (TF1's
    nested inputs are not supported).
    """
    assert_like_rnncell("cell", cell)
    with _vs(scope or "rnn"):
        if tf.nest.is_nested(inputs):
            raise TypeError(
                "tfrnn.compat.v1.nn.dynamic_rnn takes one inputs tensor; "
                "concatenate nested inputs along the last axis first."
            )
        inputs = checks.sequence_tensor(inputs, time_major, "dynamic_rnn")
        state = _initial_state(
            cell, initial_state, _batch_size(inputs, 1 if time_major else 0), dtype
        )
        build_variables(cell, inputs.shape[:1].concatenate(inputs.shape[2:]), inputs.dtype)
        return _tfrnn_dynamic_rnn(
            _UnrolledCell(cell), inputs, state, _lengths(sequence_length),
            time_major, parallel_iterations=parallel_iterations,
            swap_memory=swap_memory,
        )


def _steps(inputs):
    """TF1's list of `[batch, depth]` steps, checked, as tensors."""
    if not tf.nest.is_nested(inputs):
        raise TypeError("inputs must be a sequence")
    if not inputs:
        raise ValueError("inputs must not be empty")
    return [tf.convert_to_tensor(x) for x in inputs]


def static_rnn(cell, inputs, initial_state=None, dtype=None,
               sequence_length=None, scope=None):
    """TF1's `tf.compat.v1.nn.static_rnn`, unrolled by tfrnn's `static_rnn`.

    `inputs` is a list of `[batch, depth]` tensors, one per step. Returns
    `(outputs, state)`: a list of `[batch, output_size]` outputs (zeros past
    each row's `sequence_length`) and the final state in the cell's structure.
    """
    assert_like_rnncell("cell", cell)
    steps = _steps(inputs)
    with _vs(scope or "rnn"):
        state = _initial_state(cell, initial_state, _batch_size(steps[0], 0), dtype)
        build_variables(cell, steps[0].shape, steps[0].dtype)
        return _tfrnn_static_rnn(
            _UnrolledCell(cell), steps, state, _lengths(sequence_length)
        )


def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None,
                              initial_state_fw=None, initial_state_bw=None,
                              dtype=None, parallel_iterations=None,
                              swap_memory=False, time_major=False, scope=None):
    """TF1's `tf.compat.v1.nn.bidirectional_dynamic_rnn`.

    Returns `((output_fw, output_bw), (output_state_fw, output_state_bw))`;
    the backward cell reads each row reversed within its length and its
    outputs come back in forward time order. Variables in
    `bidirectional_rnn/fw/...` and `bidirectional_rnn/bw/...`.
    """
    assert_like_rnncell("cell_fw", cell_fw)
    assert_like_rnncell("cell_bw", cell_bw)
    time_axis = 0 if time_major else 1
    with _vs(scope or "bidirectional_rnn"):
        def run(direction, x):
            fw = direction == "fw"
            with _vs(direction) as direction_scope:
                return dynamic_rnn(
                    cell_fw if fw else cell_bw, x, sequence_length,
                    initial_state_fw if fw else initial_state_bw, dtype,
                    parallel_iterations, swap_memory, time_major,
                    scope=direction_scope,
                )

        outputs, states = bidirectional.run_both_directions(
            run,
            tf.convert_to_tensor(inputs),
            lambda x: bidirectional.reverse_time(
                x, _lengths(sequence_length), time_axis
            ),
        )
        return outputs, states


def static_bidirectional_rnn(cell_fw, cell_bw, inputs, initial_state_fw=None,
                             initial_state_bw=None, dtype=None,
                             sequence_length=None, scope=None):
    """TF1's `tf.compat.v1.nn.static_bidirectional_rnn`.

    Returns `(outputs, output_state_fw, output_state_bw)`: `outputs` a list
    with, per step, `concat([output_fw, output_bw], 1)` (backward in forward
    time order).
    """
    assert_like_rnncell("cell_fw", cell_fw)
    assert_like_rnncell("cell_bw", cell_bw)
    steps = _steps(inputs)
    with _vs(scope or "bidirectional_rnn"):
        def run(direction, steps):
            fw = direction == "fw"
            with _vs(direction) as direction_scope:
                return static_rnn(
                    cell_fw if fw else cell_bw, steps,
                    initial_state_fw if fw else initial_state_bw, dtype,
                    sequence_length, scope=direction_scope,
                )

        (outputs_fw, outputs_bw), (state_fw, state_bw) = (
            bidirectional.run_both_directions(
                run,
                steps,
                lambda steps: bidirectional.reverse_steps(
                    steps, _lengths(sequence_length)
                ),
            )
        )
        outputs = [tf.concat([fw, bw], 1) for fw, bw in zip(outputs_fw, outputs_bw)]
        return outputs, state_fw, state_bw


__all__ = [
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "rnn_cell",
    "static_bidirectional_rnn",
    "static_rnn",
]
