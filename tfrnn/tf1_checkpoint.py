"""Loads a TF1 RNN checkpoint into the main API's Keras-convention cells.

A checkpoint written by TF1's `tf.train.Saver` holds each cell under its
scope (`rnn/basic_lstm_cell/kernel`, `rnn/multi_rnn_cell/cell_0/...`,
`bidirectional_rnn/fw/...`) in TF1's layout. `load_tf1_checkpoint` finds a
cell's variables below the unroll's scope and writes them, rearranged, into:

* `tfrnn.LSTMCell` <- TF1 `BasicLSTMCell`, `LSTMCell`: the `[x; h] @ W`
  kernel split into `kernel` and `recurrent_kernel`, gates i, j, f, o ->
  i, f, j, o, peepholes stacked `[w_i, w_f, w_o]`, `projection/kernel`.
* `keras.layers.LSTMCell` <- the same without peepholes or projection, and
  TF1's `forget_bias` added to the forget gate's bias.
* `keras.layers.GRUCell(reset_after=False)` <- TF1 `GRUCell`: gates (r, u)
  and candidate -> Keras's (z = u, r, h).
* `keras.layers.SimpleRNNCell` <- TF1 `BasicRNNCell`: kernel split in two.
* `tfrnn.MultiRNNCell`, `keras.layers.StackedRNNCells` <- TF1
  `MultiRNNCell`, layer by layer (`cell_0`, `cell_1`, ...).
* `tfrnn.DropoutWrapper` <- the cell it wraps.

Keras's default `GRUCell(reset_after=True)` computes `r * (h @ U + b)` where
TF1 computes `(r * h) @ U`: no weights make them equal, so it is refused.
To run a TF1 program unchanged instead, restore into `tfrnn.compat.v1.nn`'s
cells with `tf.compat.v1.train.Saver`.
"""

import os
import re
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from tfrnn.cells import DropoutWrapper
from tfrnn.cells import LSTMCell


class CheckpointMismatchError(ValueError):
    """The checkpoint does not hold what the cell needs, or holds another cell."""


def load_tf1_checkpoint(checkpoint, cell, scope="rnn", forget_bias=1.0):
    """Sets `cell`'s weights from a TF1 cell saved under `scope`.

    >>> import tfrnn.tf1_checkpoint as tc
    >>> tf1 = {"rnn/basic_rnn_cell/kernel": np.ones([3 + 2, 2], np.float32),
    ...        "rnn/basic_rnn_cell/bias": np.zeros([2], np.float32)}
    >>> cell = keras.layers.SimpleRNNCell(2)
    >>> sorted(tc.load_tf1_checkpoint(tf1, cell).values())
    ['rnn/basic_rnn_cell/bias', 'rnn/basic_rnn_cell/kernel', 'rnn/basic_rnn_cell/kernel']
    >>> cell.kernel.shape, cell.recurrent_kernel.shape
    (TensorShape([3, 2]), TensorShape([2, 2]))

    Args:
      checkpoint: a checkpoint prefix or directory written by TF1's Saver, or
        a `{variable name: array}` mapping.
      cell: a main-API cell (see the module's table), built or not (it is
        built for the checkpoint's input size).
      scope: the TF1 unroll's scope (`"rnn"`, `"bidirectional_rnn/fw"`, a
        `scope=` given to `dynamic_rnn`), or the cell's own
        (`"rnn/lstm_cell"`).
      forget_bias: the TF1 LSTM's `forget_bias` (not in the checkpoint; 1.0
        is TF1's default). Added to the bias of a Keras `LSTMCell`; for a
        `tfrnn.LSTMCell` only the difference to its own `forget_bias`.

    Returns:
      `{cell weight path: TF1 variable name}` for every weight set.

    Raises:
      CheckpointMismatchError: no (or more than one) TF1 cell below `scope`,
        one of another kind (an LSTM's variables for a `GRUCell`), or one that
        the cell cannot represent (sizes, peepholes, projection,
        `reset_after=True`).
      FileNotFoundError: no checkpoint at `checkpoint`: no `.index` for the
        prefix, a directory without a `checkpoint` file, or one of a
        checkpoint's files (`model.ckpt.index`) given instead of its prefix.
    """
    variables = _variables(checkpoint)
    return _load(variables, cell, scope.rstrip("/"), forget_bias)


def _variables(checkpoint):
    """{name: array getter}: a mapping as given, or a checkpoint's variables."""
    if isinstance(checkpoint, Mapping):
        return {name: (lambda v=value: np.asarray(v)) for name, value in checkpoint.items()}
    reader = tf.train.load_checkpoint(_prefix(os.fspath(checkpoint)))
    return {
        name: (lambda n=name: reader.get_tensor(n))
        for name in reader.get_variable_to_shape_map()
    }


def _prefix(path):
    """The prefix of the TF1 checkpoint at `path` (`model.ckpt`, the name of
    `model.ckpt.index` and `model.ckpt.data-*`), or of a directory's latest."""
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        found = sorted(tf.io.gfile.glob(os.path.join(path, "*.index")))
        there = f"it holds '{found[-1][:-len('.index')]}'" if found else "nor a *.index"
        problem = f"'{path}' is a directory without a 'checkpoint' file ({there})"
    elif tf.io.gfile.exists(path + ".index") or tf.io.gfile.exists(path):
        stem = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
        if stem == path or not tf.io.gfile.exists(stem + ".index"):
            return path
        problem = f"'{path}' is one of the files of the checkpoint '{stem}'"
    else:
        problem = f"there is no TF1 checkpoint at '{path}' (no '{path}.index')"
    raise FileNotFoundError(
        f"load_tf1_checkpoint: {problem}; give the checkpoint's prefix, the path "
        "Saver.save was given (e.g. 'model.ckpt' for model.ckpt.index and "
        "model.ckpt.data-00000-of-00001), or a directory with a 'checkpoint' file."
    )


def _load(variables, cell, scope, forget_bias):
    if isinstance(cell, DropoutWrapper):
        return _load(variables, cell.cell, scope, forget_bias)
    layers = getattr(cell, "cells", None)
    if layers is not None:
        return _load_stack(variables, cell, layers, scope, forget_bias)
    if isinstance(cell, (LSTMCell, keras.layers.LSTMCell)):
        found = _cell_scope(variables, scope, "kernel", "an LSTM", cell)
        return _load_lstm(variables, cell, found, forget_bias)
    if isinstance(cell, keras.layers.GRUCell):
        found = _cell_scope(variables, scope, "gates/kernel", "a GRU", cell)
        return _load_gru(variables, cell, found)
    if isinstance(cell, keras.layers.SimpleRNNCell):
        found = _cell_scope(variables, scope, "kernel", "a vanilla RNN", cell)
        return _load_simple(variables, cell, found)
    raise CheckpointMismatchError(
        f"load_tf1_checkpoint: no TF1 counterpart for a {type(cell).__name__}; "
        "use tfrnn.LSTMCell, keras.layers.LSTMCell, GRUCell(reset_after=False), "
        "SimpleRNNCell, or a tfrnn.MultiRNNCell / keras StackedRNNCells of them."
    )


def _children(variables, scope):
    prefix = scope + "/"
    return sorted({n[len(prefix):].split("/")[0] for n in variables if n.startswith(prefix)})


# TF1's cells by the scope they take by default, and the main-API cells for each
_TF1_SCOPES = {"basic_lstm_cell": "an LSTM", "lstm_cell": "an LSTM", "gru_cell": "a GRU",
               "basic_rnn_cell": "a vanilla RNN", "multi_rnn_cell": "a MultiRNNCell"}
_CELLS_FOR = {
    "an LSTM": "a tfrnn.LSTMCell or keras.layers.LSTMCell",
    "a GRU": "a keras.layers.GRUCell(units, reset_after=False)",
    "a vanilla RNN": "a keras.layers.SimpleRNNCell",
    "a MultiRNNCell": "a tfrnn.MultiRNNCell or keras StackedRNNCells of its layers",
}


def _saved_kind(variables, scope):
    """The kind of TF1 cell saved at `scope` (a key of `_CELLS_FOR`), by its
    default scope name or its variables; None when neither tells."""
    below = _children(variables, scope)
    if not below:
        return None
    if scope.rsplit("/", 1)[-1] in _TF1_SCOPES:
        return _TF1_SCOPES[scope.rsplit("/", 1)[-1]]
    if "gates" in below and "candidate" in below:
        return "a GRU"
    if "cell_0" in below:
        return "a MultiRNNCell"
    return "an LSTM" if {"w_i_diag", "projection"} & set(below) else None


def _refuse_another_kind(variables, scopes, kind, cell):
    """Refuses `cell` (a `kind`) where a TF1 cell of another kind is saved."""
    for scope in scopes:
        saved = _saved_kind(variables, scope)
        if saved not in (None, kind):
            raise CheckpointMismatchError(
                f"load_tf1_checkpoint: the checkpoint holds {saved}'s variables "
                f"under '{scope}' ({', '.join(_children(variables, scope))}), where "
                f"the {type(cell).__name__} needs {kind}'s; load them into "
                f"{_CELLS_FOR[saved]}, or give the scope of {kind} (TF1's)."
            )


def _cell_scope(variables, scope, marker, kind, cell):
    """`scope` if it holds `marker`, else its one child scope that does;
    refuses a TF1 cell of another kind than `cell`'s there."""
    if f"{scope}/{marker}" in variables:
        _refuse_another_kind(variables, [scope], kind, cell)
        return scope
    children = _children(variables, scope)
    found = [c for c in children if f"{scope}/{c}/{marker}" in variables]
    below = found if len(found) == 1 else children
    _refuse_another_kind(variables, [scope] + [f"{scope}/{c}" for c in below], kind, cell)
    if len(found) != 1:
        raise CheckpointMismatchError(
            f"load_tf1_checkpoint: expected one TF1 cell with a '{marker}' below "
            f"'{scope}', found {len(found)} ({', '.join(found) or 'none'}); "
            f"the checkpoint has {', '.join(_children(variables, scope)) or 'nothing'} "
            "there. Give the cell's own scope, e.g. scope='rnn/lstm_cell'."
        )
    return f"{scope}/{found[0]}"


def _load_stack(variables, cell, layers, scope, forget_bias):
    stack_scope = scope
    if "cell_0" not in _children(variables, scope):
        found = [c for c in _children(variables, scope)
                 if "cell_0" in _children(variables, f"{scope}/{c}")]
        if len(found) != 1:
            _refuse_another_kind(
                variables,
                [scope] + [f"{scope}/{c}" for c in _children(variables, scope)],
                "a MultiRNNCell",
                cell,
            )
            raise CheckpointMismatchError(
                f"load_tf1_checkpoint: no TF1 MultiRNNCell (cell_0, cell_1, ...) "
                f"below '{scope}'; found {', '.join(_children(variables, scope)) or 'nothing'}."
            )
        stack_scope = f"{scope}/{found[0]}"
    saved_layers = sum(c.startswith("cell_") for c in _children(variables, stack_scope))
    if saved_layers != len(layers):
        raise CheckpointMismatchError(
            f"load_tf1_checkpoint: the checkpoint's stack under '{stack_scope}' "
            f"has {saved_layers} layers, the cell {len(layers)}."
        )
    loaded = {}
    for k, layer in enumerate(layers):
        loaded.update(_load(variables, layer, f"{stack_scope}/cell_{k}", forget_bias))
    return loaded


def _split_kernel(kernel, units_in_state, cell_name, scope):
    """TF1's `[x; h] @ W` kernel -> (input kernel, recurrent kernel)."""
    features = kernel.shape[0] - units_in_state
    if features <= 0:
        raise CheckpointMismatchError(
            f"load_tf1_checkpoint: '{scope}/kernel' has shape {kernel.shape}, too "
            f"few rows for a {cell_name} whose state has {units_in_state} units."
        )
    return kernel[:features], kernel[features:]


def _assign(cell, values, names, features):
    """Builds `cell` for `features` inputs and sets each weight; checks shapes."""
    if not cell.built:
        cell.build((None, features))
    loaded = {}
    for weight, value in values.items():
        variable = getattr(cell, weight)
        if tuple(variable.shape) != value.shape:
            raise CheckpointMismatchError(
                f"load_tf1_checkpoint: {type(cell).__name__}.{weight} has shape "
                f"{tuple(variable.shape)}; '{names[weight]}' gives {value.shape}."
            )
        variable.assign(value.astype(variable.dtype))
        loaded[getattr(variable, "path", weight)] = names[weight]
    return loaded


def _swap_middle_gates(w):
    """Gate columns i, j, f, o (TF1) <-> i, f, j, o (Keras); its own inverse."""
    i, j, f, o = np.split(w, 4, axis=-1)
    return np.concatenate([i, f, j, o], axis=-1)


def _load_lstm(variables, cell, scope, forget_bias):
    units = cell.units
    output_units = getattr(cell, "num_proj", None) or units
    has = {name: f"{scope}/{name}" in variables for name in ("w_i_diag", "projection/kernel")}
    wants_peepholes = bool(getattr(cell, "use_peepholes", False))
    wants_projection = bool(getattr(cell, "num_proj", None))
    if has["w_i_diag"] != wants_peepholes or has["projection/kernel"] != wants_projection:
        raise CheckpointMismatchError(
            f"load_tf1_checkpoint: the TF1 LSTM under '{scope}' has "
            f"peepholes={has['w_i_diag']}, projection={has['projection/kernel']}; "
            f"the {type(cell).__name__} has peepholes={wants_peepholes}, "
            f"projection={wants_projection}. Use tfrnn.LSTMCell(use_peepholes=..., "
            "num_proj=...) to match."
        )
    kernel = variables[f"{scope}/kernel"]()
    if kernel.shape[-1] != 4 * units:
        raise CheckpointMismatchError(
            f"load_tf1_checkpoint: '{scope}/kernel' has shape {kernel.shape}, not "
            f"the 4 * {units} gate columns of a TF1 LSTM of {units} units."
        )
    kernel, recurrent = _split_kernel(kernel, output_units, "LSTM", scope)
    bias = _swap_middle_gates(variables[f"{scope}/bias"]()).copy()
    shift = forget_bias - getattr(cell, "forget_bias", 0.0)
    bias[units:2 * units] += shift  # Keras's forget gate is the second
    values = {
        "kernel": _swap_middle_gates(kernel),
        "recurrent_kernel": _swap_middle_gates(recurrent),
        "bias": bias,
    }
    names = {"kernel": f"{scope}/kernel", "recurrent_kernel": f"{scope}/kernel",
             "bias": f"{scope}/bias"}
    if wants_peepholes:
        values["peepholes"] = np.stack(
            [variables[f"{scope}/w_{g}_diag"]() for g in ("i", "f", "o")]
        )
        names["peepholes"] = f"{scope}/w_i_diag, w_f_diag, w_o_diag"
    if wants_projection:
        values["projection"] = variables[f"{scope}/projection/kernel"]()
        names["projection"] = f"{scope}/projection/kernel"
    return _assign(cell, values, names, kernel.shape[0])


def _load_gru(variables, cell, scope):
    if cell.reset_after:
        raise CheckpointMismatchError(
            "load_tf1_checkpoint: keras.layers.GRUCell(reset_after=True) computes "
            "r * (h @ U + b) where TF1's GRUCell computes (r * h) @ U: no weights "
            "make them equal. Build GRUCell(units, reset_after=False)."
        )
    units = cell.units
    gates = variables[f"{scope}/gates/kernel"]()
    candidate = variables[f"{scope}/candidate/kernel"]()
    r, u = np.split(gates, 2, axis=1)
    full = np.concatenate([u, r, candidate], axis=1)  # Keras: z (= TF1's u), r, h
    kernel, recurrent = _split_kernel(full, units, "GRU", scope)
    gate_bias = variables[f"{scope}/gates/bias"]()
    bias_r, bias_u = np.split(gate_bias, 2)
    values = {
        "kernel": kernel,
        "recurrent_kernel": recurrent,
        "bias": np.concatenate([bias_u, bias_r, variables[f"{scope}/candidate/bias"]()]),
    }
    names = {
        "kernel": f"{scope}/gates/kernel, candidate/kernel",
        "recurrent_kernel": f"{scope}/gates/kernel, candidate/kernel",
        "bias": f"{scope}/gates/bias, candidate/bias",
    }
    return _assign(cell, values, names, kernel.shape[0])


def _load_simple(variables, cell, scope):
    kernel, recurrent = _split_kernel(
        variables[f"{scope}/kernel"](), cell.units, "BasicRNNCell", scope
    )
    values = {"kernel": kernel, "recurrent_kernel": recurrent,
              "bias": variables[f"{scope}/bias"]()}
    names = {"kernel": f"{scope}/kernel", "recurrent_kernel": f"{scope}/kernel",
             "bias": f"{scope}/bias"}
    return _assign(cell, values, names, kernel.shape[0])
