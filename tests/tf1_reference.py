"""TF1's own RNN code, run on given weights: the reference tfrnn is tested against.

    TF_USE_LEGACY_KERAS=1 python tests/tf1_reference.py IN.npz OUT.npz

TF 2.21 still ships TF1's `tf.compat.v1.nn.static_rnn`/`dynamic_rnn` and its
`rnn_cell.LSTMCell`/`GRUCell`/`MultiRNNCell`, but the cells come from tf-keras:
they need `TF_USE_LEGACY_KERAS=1` before tensorflow is imported, and graph
mode. So this runs as a subprocess of the tests, which use Keras 3.

IN.npz holds cases; the keys of case NAME all begin with "NAME/":

    NAME/spec        JSON: {"layers": [{"type": "lstm"|"gru", "units": ...,
                     LSTM options...}, ...], "multi": bool,
                     "unrolls": ["static", "dynamic"] or a part of it}
    NAME/x           [B, T, F] inputs, batch-major (float32 or float64: the
                     dtype of the whole case)
    NAME/lengths     [B] int32 sequence lengths (absent: unpadded)
    NAME/R           [B, T, output size], weights of the outputs in the loss
    NAME/S/KEY       weights of state tensor KEY in the loss ("0/c", "0/h",
                     "1/h": layer, then LSTM c or h, or a GRU's h)
    NAME/w/KEY       TF1 weights ("0/kernel", "0/bias", "0/w_i_diag",
                     "0/w_f_diag", "0/w_o_diag", "0/projection",
                     "1/gates_kernel", "1/gates_bias", "1/candidate_kernel",
                     "1/candidate_bias")

For each case and each unroll U of its spec, OUT.npz holds

    NAME/U/outputs        [B, T, output size]
    NAME/U/state/KEY      final state tensors
    NAME/U/grad/x         dL/dx
    NAME/U/grad/w/KEY     dL/dweight, one per NAME/w/KEY

of the loss L = sum(outputs * R) + sum over KEY of sum(state[KEY] * S[KEY]).
"""

import json
import os
import sys
import warnings

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before tensorflow is imported

import numpy as np
import tensorflow as tf

rnn_cell = tf.compat.v1.nn.rnn_cell

# Grappler off: the graphs run as TF1's code builds them, and start about
# twice as fast (a padded static_rnn of 28 steps has thousands of nodes).
SESSION_CONFIG = tf.compat.v1.ConfigProto()
SESSION_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True


def make_layer(spec, dtype):
    """A TF1 cell for one layer of `spec`."""
    if spec["type"] == "lstm":
        return rnn_cell.LSTMCell(
            spec["units"],
            use_peepholes=spec.get("use_peepholes", False),
            cell_clip=spec.get("cell_clip"),
            num_proj=spec.get("num_proj"),
            proj_clip=spec.get("proj_clip"),
            forget_bias=1.0,
            dtype=dtype,
        )
    if spec["type"] == "gru":
        return rnn_cell.GRUCell(spec["units"], dtype=dtype)
    raise ValueError(f"unknown layer type {spec['type']!r}")


def layer_weights(layer, cell):
    """The variables of one built TF1 cell, by the names IN.npz uses."""
    if isinstance(cell, rnn_cell.LSTMCell):
        weights = {"kernel": cell._kernel, "bias": cell._bias}
        if layer.get("use_peepholes"):
            weights.update(
                w_i_diag=cell._w_i_diag,
                w_f_diag=cell._w_f_diag,
                w_o_diag=cell._w_o_diag,
            )
        if layer.get("num_proj"):
            weights["projection"] = cell._proj_kernel
        return weights
    return {
        "gates_kernel": cell._gate_kernel,
        "gates_bias": cell._gate_bias,
        "candidate_kernel": cell._candidate_kernel,
        "candidate_bias": cell._candidate_bias,
    }


def layer_state(cell, state):
    """One layer's state tensors, by the names IN.npz uses."""
    if isinstance(cell, rnn_cell.LSTMCell):
        return {"c": state.c, "h": state.h}  # LSTMStateTuple(c, h)
    return {"h": state}


def run_case(case, unroll):
    """Builds and runs one case with one unroll in a graph of its own."""
    spec = json.loads(str(case["spec"]))
    x_value = case["x"]
    dtype = tf.as_dtype(x_value.dtype)
    with tf.Graph().as_default():
        layers = [make_layer(layer, dtype) for layer in spec["layers"]]
        cell = rnn_cell.MultiRNNCell(layers) if spec["multi"] else layers[0]
        x = tf.constant(x_value)
        lengths = tf.constant(case["lengths"]) if "lengths" in case else None
        if unroll == "static":
            output_list, state = tf.compat.v1.nn.static_rnn(
                cell, tf.unstack(x, axis=1), sequence_length=lengths, dtype=dtype
            )
            outputs = tf.stack(output_list, axis=1)
        else:
            outputs, state = tf.compat.v1.nn.dynamic_rnn(
                cell, x, sequence_length=lengths, dtype=dtype
            )
        layer_states = state if spec["multi"] else (state,)

        weights, states = {}, {}
        for k, (layer, layer_cell) in enumerate(zip(spec["layers"], layers)):
            for name, variable in layer_weights(layer, layer_cell).items():
                weights[f"{k}/{name}"] = variable
            for name, tensor in layer_state(layer_cell, layer_states[k]).items():
                states[f"{k}/{name}"] = tensor
        if set(weights) != set(case["w"]) or set(states) != set(case["S"]):
            raise ValueError(
                f"case weights {sorted(case['w'])} and states "
                f"{sorted(case['S'])} do not match TF1's "
                f"{sorted(weights)} and {sorted(states)}"
            )

        loss = tf.reduce_sum(outputs * case["R"])
        for key, tensor in states.items():
            loss += tf.reduce_sum(tensor * case["S"][key])
        names = sorted(weights)
        grads = tf.compat.v1.gradients(loss, [x] + [weights[n] for n in names])
        grads = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for v, g in zip([x] + [weights[n] for n in names], grads)
        ]

        with tf.compat.v1.Session(config=SESSION_CONFIG) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for name in names:
                weights[name].load(case["w"][name], session)
            outputs_value, states_value, grads_value = session.run(
                (outputs, states, grads)
            )

    result = {"outputs": outputs_value, "grad/x": grads_value[0]}
    for key, value in states_value.items():
        result[f"state/{key}"] = value
    for name, value in zip(names, grads_value[1:]):
        result[f"grad/w/{name}"] = value
    return {f"{unroll}/{key}": value for key, value in result.items()}


def read_cases(path):
    """IN.npz as {case name: {"spec", "x", "R", "lengths"?, "S": {}, "w": {}}}."""
    cases = {}
    with np.load(path) as data:
        for key in data.files:
            name, field = key.split("/", 1)
            case = cases.setdefault(name, {"S": {}, "w": {}})
            if field.startswith(("S/", "w/")):
                case[field[0]][field[2:]] = data[key]
            else:
                case[field] = data[key]
    return cases


def main(in_path, out_path):
    tf.compat.v1.disable_v2_behavior()  # graph mode, TF1's control flow
    tf.get_logger().setLevel("ERROR")  # quiet TF1's deprecation warnings,
    warnings.simplefilter("ignore")  # which come once per cell
    results = {}
    for name, case in read_cases(in_path).items():
        for unroll in json.loads(str(case["spec"]))["unrolls"]:
            for key, value in run_case(case, unroll).items():
                results[f"{name}/{key}"] = value
    np.savez(out_path, **results)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} IN.npz OUT.npz")
    main(sys.argv[1], sys.argv[2])
