"""tfrnn against TF1's original RNN code, on the same weights.

TF1's `tf.compat.v1.nn.static_rnn`/`dynamic_rnn` and `rnn_cell.LSTMCell`/
`GRUCell`/`MultiRNNCell` only run with `TF_USE_LEGACY_KERAS=1` (set before
tensorflow is imported) in graph mode, so one subprocess,
`tests/tf1_reference.py`, runs every case of this module. tfrnn runs the same
cases here on Keras 3, eagerly and in `tf.function`, and must agree with TF1
in the forward pass (outputs and every final-state tensor) and in the
gradients, with respect to the inputs and every weight, of

    L = sum(outputs * R) + sum over state tensors k of sum(state_k * S_k).

Tolerances (max abs difference):

* float32 forward: 1e-6.
* float32 gradients: 1e-6 * max(1, max |TF1's gradient|). The weights'
  gradients sum over batch and time and reach 20-50 here, where float32's
  spacing is 1.9e-6 to 3.8e-6: 1e-6 absolute is below float32's resolution,
  and TF1's own static_rnn and dynamic_rnn differ by 3.8e-6 (summation
  order). Scaled by the tensor's magnitude, 1e-6 holds (worst seen: 5.6e-7;
  TF1 static vs dynamic: 4.8e-7). oneDNN is not the cause: with
  TF_ENABLE_ONEDNN_OPTS=0 in both processes, the worst is 6.1e-7.
* float64 (the T=28 cases, eager, against TF1's dynamic_rnn): 1e-12 on
  everything. The two agree to ~1e-14, so the float32 differences are
  rounding, not a difference in the math.

Weights are drawn in tfrnn's/Keras's layout, set on the tfrnn cells, and
converted to TF1's layout for the reference (`to_tf1`); TF1's gradients are
converted back (`from_tf1`) before comparing. The mapping follows TF1's
source (tf_keras/src/layers/rnn/legacy_cells.py):

* LSTM: TF1 `kernel [F+P, 4U]` acts on `concat([x, h])` with gates i, j, f, o;
  tfrnn splits it into `kernel [F, 4U]` and `recurrent_kernel [P, 4U]` with
  gates i, f, j, o. Peepholes `w_i_diag, w_f_diag, w_o_diag` are the rows of
  tfrnn's `peepholes [3, U]`; `projection/kernel` is `projection`. TF1's state
  is `LSTMStateTuple(c, h)`, tfrnn's `[h, c]`.
* GRU: Keras `GRUCell(reset_after=False)` has `kernel [F, 3H]`,
  `recurrent_kernel [H, 3H]`, `bias [3H]` with gates z, r, h. TF1 has
  `gates/kernel [F+H, 2H]` and `gates/bias` with gates (r, u), where TF1's
  u is Keras's z (`h' = u * h + (1 - u) * c`), and `candidate/kernel [F+H, H]`
  applied to `concat([x, r * h])`: Keras's `x @ W_h + (r * h) @ U_h + b_h`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn

B, F, UNITS, NUM_PROJ = 4, 3, 5, 4

LSTM_FULL = {
    "type": "lstm",
    "units": UNITS,
    "use_peepholes": True,
    "cell_clip": 1.0,
    "num_proj": NUM_PROJ,
    "proj_clip": 0.5,
}
LSTM_PLAIN = {
    "type": "lstm",
    "units": UNITS,
    "use_peepholes": False,
    "cell_clip": None,
    "num_proj": None,
    "proj_clip": None,
}
GRU = {"type": "gru", "units": UNITS}
CELLS = {  # name: (layers, multi)
    "lstm_peephole_proj": ([LSTM_FULL], False),
    "lstm_plain": ([LSTM_PLAIN], False),
    "gru": ([GRU], False),
    "multi_lstm_gru": ([LSTM_FULL, GRU], True),
}
TIMES = (1, 5, 28)
PADDINGS = ("unpadded", "padded")
UNROLLS = {"static": tfrnn.static_rnn, "dynamic": tfrnn.dynamic_rnn}
EXECUTIONS = ("eager", "function")

CASES = [(c, t, p) for c in CELLS for t in TIMES for p in PADDINGS]
FLOAT64_CASES = [(c, 28, p) for c in CELLS for p in PADDINGS]
WAYS = [(u, e) for u in UNROLLS for e in EXECUTIONS]


def case_name(cell, time_steps, padding, dtype="float32"):
    suffix = "" if dtype == "float32" else f"-{dtype}"
    return f"{cell}-T{time_steps}-{padding}{suffix}"


# Weight layouts ------------------------------------------------------------


def output_size(layer):
    return layer.get("num_proj") or layer["units"]


def state_names(layer):
    """Names of one layer's state tensors, in tfrnn's order ([h, c])."""
    return ["h", "c"] if layer["type"] == "lstm" else ["h"]


def random_weights(layer, features, rng):
    """One layer's weights in tfrnn's/Keras's layout."""
    units = layer["units"]

    def normal(*shape):
        return rng.normal(scale=0.5, size=shape)

    if layer["type"] == "gru":
        return {
            "kernel": normal(features, 3 * units),
            "recurrent_kernel": normal(units, 3 * units),
            "bias": normal(3 * units),
        }
    weights = {
        "kernel": normal(features, 4 * units),
        "recurrent_kernel": normal(output_size(layer), 4 * units),
        "bias": normal(4 * units),
    }
    if layer["use_peepholes"]:
        weights["peepholes"] = normal(3, units)
    if layer["num_proj"]:
        weights["projection"] = normal(units, layer["num_proj"])
    return weights


def swap_middle_gates(w):
    """Gate columns i, f, j, o <-> i, j, f, o (the swap is its own inverse)."""
    a, b, c, d = np.split(w, 4, axis=-1)
    return np.concatenate([a, c, b, d], axis=-1)


def to_tf1(layer, weights):
    """One layer's weights, tfrnn/Keras layout -> TF1 layout."""
    full = np.concatenate([weights["kernel"], weights["recurrent_kernel"]])
    if layer["type"] == "gru":
        z, r, h = np.split(full, 3, axis=1)
        bz, br, bh = np.split(weights["bias"], 3)
        return {
            "gates_kernel": np.concatenate([r, z], axis=1),
            "gates_bias": np.concatenate([br, bz]),
            "candidate_kernel": h,
            "candidate_bias": bh,
        }
    tf1 = {
        "kernel": swap_middle_gates(full),
        "bias": swap_middle_gates(weights["bias"]),
    }
    if "peepholes" in weights:
        w_i, w_f, w_o = weights["peepholes"]
        tf1.update(w_i_diag=w_i, w_f_diag=w_f, w_o_diag=w_o)
    if "projection" in weights:
        tf1["projection"] = weights["projection"]
    return tf1


def from_tf1(layer, tf1, features):
    """One layer's weights (or gradients), TF1 layout -> tfrnn/Keras layout."""
    if layer["type"] == "gru":
        r, z = np.split(tf1["gates_kernel"], 2, axis=1)
        br, bz = np.split(tf1["gates_bias"], 2)
        full = np.concatenate([z, r, tf1["candidate_kernel"]], axis=1)
        bias = np.concatenate([bz, br, tf1["candidate_bias"]])
        return {
            "kernel": full[:features],
            "recurrent_kernel": full[features:],
            "bias": bias,
        }
    full = swap_middle_gates(tf1["kernel"])
    weights = {
        "kernel": full[:features],
        "recurrent_kernel": full[features:],
        "bias": swap_middle_gates(tf1["bias"]),
    }
    if "w_i_diag" in tf1:
        weights["peepholes"] = np.stack(
            [tf1["w_i_diag"], tf1["w_f_diag"], tf1["w_o_diag"]]
        )
    if "projection" in tf1:
        weights["projection"] = tf1["projection"]
    return weights


# Cases ---------------------------------------------------------------------


def make_weights(cell, dtype, rng):
    """Each layer's weights in tfrnn's/Keras's layout, a list by layer."""
    layers, _ = CELLS[cell]
    weights, features = [], F
    for layer in layers:
        weights.append(
            {
                name: value.astype(dtype)
                for name, value in random_weights(layer, features, rng).items()
            }
        )
        features = output_size(layer)
    return weights


def make_case(cell, time_steps, padding, dtype, weights, rng):
    """One case: `tf1` is what tf1_reference.py reads (TF1's layout).

    `tf1` holds the inputs `x`, the `lengths` when padded, the loss weights
    `R` and `S/k/NAME`, and `weights` in TF1's layout (`w/k/NAME`).
    """
    layers, multi = CELLS[cell]

    def normal(*shape):
        return rng.normal(size=shape).astype(dtype)

    unrolls = ["static", "dynamic"] if dtype == "float32" else ["dynamic"]
    tf1 = {
        "spec": json.dumps({"layers": layers, "multi": multi, "unrolls": unrolls}),
        "x": normal(B, time_steps, F),
        "R": normal(B, time_steps, output_size(layers[-1])),
    }
    if padding == "padded":
        tf1["lengths"] = np.array(
            [time_steps, 0, max(1, time_steps // 2), max(1, time_steps - 1)], np.int32
        )
    for k, layer in enumerate(layers):
        for name, value in to_tf1(layer, weights[k]).items():
            tf1[f"w/{k}/{name}"] = value
        for name in state_names(layer):
            tf1[f"S/{k}/{name}"] = normal(
                B, layer["units"] if name == "c" else output_size(layer)
            )
    return {"cell": cell, "dtype": dtype, "padded": padding == "padded", "tf1": tf1}


def make_cases():
    """({case name: case}, {(cell, dtype): weights}).

    All the cases of a cell and dtype share its weights, so that tfrnn runs
    them on one cell (and one `tf.function` serves every length).
    """
    rng = np.random.default_rng(2024)
    weights = {
        (cell, dtype): make_weights(cell, dtype, rng)
        for cell in CELLS
        for dtype in ("float32", "float64")
    }
    cases = {
        case_name(*c): make_case(*c, "float32", weights[c[0], "float32"], rng)
        for c in CASES
    }
    cases.update(
        {
            case_name(*c, "float64"): make_case(
                *c, "float64", weights[c[0], "float64"], rng
            )
            for c in FLOAT64_CASES
        }
    )
    return cases, weights


# TF1, in a subprocess ------------------------------------------------------


def run_beside_tf1(script, args, log_path, run_mine, timeout):
    """Runs `tests/script args` under TF1 (tf-keras) in a subprocess and
    `run_mine()` here meanwhile (on two cores the two overlap); returns
    `run_mine()`'s result, or fails with the end of TF1's log."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(Path(__file__).with_name(script))]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command + [str(a) for a in args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        mine = run_mine()
        returncode = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if returncode != 0:
        pytest.fail(
            f"{script} failed (exit {returncode}):\n{log_path.read_text()[-10000:]}",
            pytrace=False,
        )
    return mine


def tf1_results(cases, out_path):
    """{(case name, unroll): result}, TF1's gradients in tfrnn's layout."""
    with np.load(out_path) as data:
        flat = {key: data[key] for key in data.files}
    results = {}
    for key, value in flat.items():
        name, unroll, field = key.split("/", 2)
        results.setdefault((name, unroll), {})[field] = value
    for (name, _), result in results.items():
        layers, _ = CELLS[cases[name]["cell"]]
        features = F
        for k, layer in enumerate(layers):
            prefix = f"grad/w/{k}/"
            grads = {
                key[len(prefix) :]: result.pop(key)
                for key in list(result)
                if key.startswith(prefix)
            }
            for weight, value in from_tf1(layer, grads, features).items():
                result[prefix + weight] = value
            features = output_size(layer)
    return results


# tfrnn, here ---------------------------------------------------------------


def tfrnn_cell(cell, dtype, weights):
    """(cell, {"0/kernel": variable, ...}), with the given weights."""
    layers, multi = CELLS[cell]
    cells = []
    for layer in layers:
        if layer["type"] == "gru":
            cells.append(
                keras.layers.GRUCell(layer["units"], reset_after=False, dtype=dtype)
            )
        else:
            cells.append(
                tfrnn.LSTMCell(
                    layer["units"],
                    use_peepholes=layer["use_peepholes"],
                    cell_clip=layer["cell_clip"],
                    num_proj=layer["num_proj"],
                    proj_clip=layer["proj_clip"],
                    dtype=dtype,
                )
            )
    # A stack casts its inputs to its own dtype: give it the cells'.
    stack = tfrnn.MultiRNNCell(cells, dtype=dtype) if multi else cells[0]
    stack.build((None, F))
    variables = {}
    for k, (layer_cell, layer_weights) in enumerate(zip(cells, weights)):
        for weight, value in layer_weights.items():
            getattr(layer_cell, weight).assign(value)
            variables[f"{k}/{weight}"] = getattr(layer_cell, weight)
    return stack, variables


def loss_and_gradients(cell_name, cell, variables, unroll):
    """`compute(data)`: outputs, final states and gradients, as in TF1's run.

    `data` is a case's {"x", "R", "S/k/NAME"..., "lengths"?} as tensors.
    """
    layers, multi = CELLS[cell_name]
    names = sorted(variables)

    def compute(data):
        x = data["x"]
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs, state = UNROLLS[unroll](
                cell, x, sequence_length=data.get("lengths")
            )
            layer_states = state if multi else (state,)
            states = {}
            for k, layer in enumerate(layers):
                tensors = tf.nest.flatten(layer_states[k])
                for state_name, tensor in zip(state_names(layer), tensors, strict=True):
                    states[f"{k}/{state_name}"] = tensor
            loss = tf.reduce_sum(outputs * data["R"])
            for key, tensor in states.items():
                loss += tf.reduce_sum(tensor * data[f"S/{key}"])
        sources = [x] + [variables[n] for n in names]
        grads = tape.gradient(loss, sources)
        grads = [
            tf.zeros_like(s) if g is None else tf.convert_to_tensor(g)
            for s, g in zip(sources, grads)
        ]
        result = {"outputs": outputs, "grad/x": grads[0]}
        result.update({f"state/{key}": tensor for key, tensor in states.items()})
        result.update({f"grad/w/{n}": g for n, g in zip(names, grads[1:])})
        return result

    return compute


def any_length_signature(data):
    """`data`'s input signature for `tf.function`, any number of steps."""

    def spec(key, value):
        shape = list(value.shape)
        if key in ("x", "R"):  # [batch, time, ...]
            shape[1] = None
        return tf.TensorSpec(shape, value.dtype)

    return [{key: spec(key, value) for key, value in data.items()}]


def tfrnn_results(cases, weights):
    """{(case name, unroll, execution): result, or the exception it raised}.

    In `tf.function`, static_rnn traces once per length; dynamic_rnn once for
    all (its time dimension is None in the input signature).
    """
    cells = {key: tfrnn_cell(*key, value) for key, value in weights.items()}
    functions = {}
    results = {}
    for name, case in cases.items():
        cell, variables = cells[case["cell"], case["dtype"]]
        data = {
            key: value
            for key, value in case["tf1"].items()
            if key in ("x", "R", "lengths") or key.startswith("S/")
        }
        ways = (
            WAYS
            if case["dtype"] == "float32"
            else [(unroll, "eager") for unroll in UNROLLS]
        )
        for unroll, execution in ways:
            key = (case["cell"], case["dtype"], case["padded"], unroll, execution)
            if key not in functions:
                compute = loss_and_gradients(case["cell"], cell, variables, unroll)
                if execution == "function":
                    compute = tf.function(
                        compute,
                        input_signature=(
                            any_length_signature(data) if unroll == "dynamic" else None
                        ),
                    )
                functions[key] = compute
            try:
                result = functions[key](tf.nest.map_structure(tf.constant, data))
                result = {k: v.numpy() for k, v in result.items()}
            except Exception as e:  # noqa: BLE001 -- raised again by its test
                result = e
            results[name, unroll, execution] = result
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(TF1's results, tfrnn's results) for every case.

    TF1 runs in its subprocess while tfrnn runs here: the two take about as
    long (building graphs, mostly), so on two cores they overlap.
    """
    cases, weights = make_cases()
    folder = tmp_path_factory.mktemp("tf1_reference")
    in_path, out_path = folder / "in.npz", folder / "out.npz"
    np.savez(
        in_path,
        **{
            f"{name}/{key}": value
            for name, case in cases.items()
            for key, value in case["tf1"].items()
        },
    )
    mine = run_beside_tf1(
        "tf1_reference.py", [in_path, out_path], folder / "tf1_reference.log",
        lambda: tfrnn_results(cases, weights), timeout=600,
    )
    return tf1_results(cases, out_path), mine


# Tests ---------------------------------------------------------------------


def assert_close(actual, expected, keys, atol, scaled=False):
    """Each of `keys` agrees to `atol`, times max(1, max |expected|) when
    `scaled`; the message names every mismatch."""
    failures = []
    for key in keys:
        a, e = actual[key], expected[key]
        assert a.shape == e.shape, f"{key}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"{key}: dtype {a.dtype} != {e.dtype}"
        if not a.size:
            continue
        diff = float(np.max(np.abs(a - e)))
        scale = float(np.max(np.abs(e)))
        tolerance = atol * max(1.0, scale) if scaled else atol
        if not diff <= tolerance:
            failures.append(
                f"{key}: max abs difference {diff:.3g} > {tolerance:.3g}"
                f" (max abs value {scale:.3g})"
            )
    assert not failures, "\n".join(failures)


def forward_keys(result):
    return sorted(k for k in result if k == "outputs" or k.startswith("state/"))


def gradient_keys(result):
    return sorted(k for k in result if k.startswith("grad/"))


def pair(results, name, unroll, execution, tf1_unroll=None):
    """(tfrnn's result, TF1's result), with the same keys."""
    tf1, mine = results
    actual = mine[name, unroll, execution]
    if isinstance(actual, Exception):
        raise actual
    expected = tf1[name, tf1_unroll or unroll]
    assert sorted(actual) == sorted(expected)
    return actual, expected


parametrize_ways = pytest.mark.parametrize(
    "unroll,execution", WAYS, ids=[f"{u}-{e}" for u, e in WAYS]
)
parametrize_cases = pytest.mark.parametrize(
    "cell,time_steps,padding", CASES, ids=[case_name(*c) for c in CASES]
)


@parametrize_ways
@parametrize_cases
def test_forward_matches_tf1(results, cell, time_steps, padding, unroll, execution):
    actual, expected = pair(
        results, case_name(cell, time_steps, padding), unroll, execution
    )
    assert_close(actual, expected, forward_keys(expected), atol=1e-6)


@parametrize_ways
@parametrize_cases
def test_gradients_match_tf1(results, cell, time_steps, padding, unroll, execution):
    actual, expected = pair(
        results, case_name(cell, time_steps, padding), unroll, execution
    )
    assert_close(actual, expected, gradient_keys(expected), atol=1e-6, scaled=True)


@pytest.mark.parametrize("unroll", list(UNROLLS))
@pytest.mark.parametrize(
    "cell,time_steps,padding", FLOAT64_CASES, ids=[case_name(*c) for c in FLOAT64_CASES]
)
def test_float64_matches_tf1_dynamic_rnn(results, cell, time_steps, padding, unroll):
    """In float64 the float32 rounding is gone: the math agrees to 1e-12."""
    actual, expected = pair(
        results,
        case_name(cell, time_steps, padding, "float64"),
        unroll,
        "eager",
        tf1_unroll="dynamic",
    )
    assert_close(actual, expected, sorted(expected), atol=1e-12)


@parametrize_cases
def test_tf1_static_matches_tf1_dynamic(results, cell, time_steps, padding):
    """Sanity check of the reference itself: TF1's two unrolls agree."""
    tf1, _ = results
    name = case_name(cell, time_steps, padding)
    static, dynamic = tf1[name, "static"], tf1[name, "dynamic"]
    assert sorted(static) == sorted(dynamic)
    assert_close(static, dynamic, forward_keys(static), atol=1e-6)
    assert_close(static, dynamic, gradient_keys(static), atol=1e-6, scaled=True)


@pytest.mark.parametrize("cell", list(CELLS))
def test_weight_mapping_round_trips(cell):
    """`from_tf1` undoes `to_tf1`, so TF1's gradients come back in place."""
    layers, _ = CELLS[cell]
    weights = make_weights(cell, "float32", np.random.default_rng(0))
    features = F
    for layer, layer_weights in zip(layers, weights):
        back = from_tf1(layer, to_tf1(layer, layer_weights), features)
        assert sorted(back) == sorted(layer_weights)
        for name, value in layer_weights.items():
            np.testing.assert_array_equal(back[name], value, err_msg=name)
        features = output_size(layer)
