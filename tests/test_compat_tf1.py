"""`tfrnn.compat.v1.nn` against TF1's own `tf.compat.v1.nn`, program for program.

The programs live in `tests/tf1_programs.py` and take the `nn` module as
their one argument: one subprocess (`tests/tf1_compat_reference.py`) runs
them all with TF1's `nn` (tf-keras, `TF_USE_LEGACY_KERAS=1`, graph mode),
while this process runs them with tfrnn's, in a `tf.compat.v1` Session graph
(the same program), and eagerly and in `tf.function` (the same cells and
functions under a `GradientTape`). Weights are drawn from each variable's
name, so equal names give equal weights: the variable names are compared
first.

Tolerances are `tests/test_tf1_reference.py`'s: forward 1e-6; gradients
1e-6 * max(1, max |TF1's gradient|). The tutorials' losses after a few
Adam steps: 1e-5 relative (Adam divides by sqrt(v) of gradients as small as
float32's rounding, so one step amplifies 1e-7 differences).
"""

import functools
import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf1_programs
import tfrnn
from test_tf1_reference import run_beside_tf1
from tfrnn.tasks.classify import data as tfrnn_data
from tfrnn import tf1_checkpoint
from tfrnn.compat.v1 import nn

T = 4
PADDED = [T, 0, 2, 3]  # lengths T and 0 included
CELLS = [
    "basic_rnn", "basic_lstm", "basic_lstm_concat", "lstm", "lstm_full", "gru",
    "multi", "multi_concat", "dropout", "dropout_variational", "residual", "user",
    "user_old_style",
]
# Equal to TF1's in graphs only: random masks, and get_variable (which makes
# new variables at every call outside a graph, in TF1 too).
GRAPH_ONLY_CELLS = {"dropout", "dropout_variational", "user_old_style"}
UNPADDED_STATIC = {"lstm_full", "multi", "gru"}  # the unpadded static path is short
BIDIRECTIONAL = {("basic_lstm", "gru"): (True, False), ("multi", "lstm_full"): (True,)}


def spec(function, cell, padded, cell_bw=None, time_major=False):
    s = {"function": function, "cell": cell, "time_steps": T,
         "lengths": PADDED if padded else None}
    if cell_bw:
        s["cell_bw"] = cell_bw
    if time_major:
        s["time_major"] = True
    return s


def case_specs():
    """Every cell with static_rnn and dynamic_rnn, padded and unpadded (static
    unpadded for three of them), the bidirectional functions on two pairs."""
    cases = {}
    for cell in CELLS:
        for padded in (True, False):
            pad = "padded" if padded else "unpadded"
            cases[f"dynamic_rnn-{cell}-{pad}"] = spec("dynamic_rnn", cell, padded)
            if padded or cell in UNPADDED_STATIC:
                cases[f"static_rnn-{cell}-{pad}"] = spec("static_rnn", cell, padded)
    for (fw, bw), paddings in BIDIRECTIONAL.items():
        for padded in paddings:
            pad = "padded" if padded else "unpadded"
            for function in ("bidirectional_dynamic_rnn", "static_bidirectional_rnn"):
                cases[f"{function}-{fw}-{bw}-{pad}"] = spec(function, fw, padded, bw)
    cases["dynamic_rnn-lstm_full-padded-time_major"] = spec(
        "dynamic_rnn", "lstm_full", True, time_major=True
    )
    return cases


CASES = case_specs()
TUTORIAL_STEPS = 4
TUTORIALS = ("static", "dynamic")


@functools.lru_cache(maxsize=1)
def mnist_subset():
    """(x_train, y_train, x_test, y_test): 4 batches of 32 and 200 test rows."""
    arrays = tfrnn_data.load_arrays("mnist")
    n_train = 32 * TUTORIAL_STEPS

    def prepare(x, y, n):
        images = (x[:n] / 255.0).astype(np.float32)
        return images, np.eye(10, dtype=np.float32)[y[:n]]

    return (*prepare(arrays.x_train, arrays.y_train, n_train),
            *prepare(arrays.x_test, arrays.y_test, 200))


def write_tf1_jobs(folder):
    """Writes every job and its data for TF1; returns the script's arguments."""
    jobs = [{"kind": "rnn", "name": name, "spec": s} for name, s in CASES.items()]
    jobs += [
        {"kind": "tutorial", "name": f"tutorial_{kind}", "tutorial": kind,
         "steps": TUTORIAL_STEPS, "checkpoint": str(folder / f"tutorial_{kind}.ckpt"),
         "target_accuracy": 0.0}
        for kind in TUTORIALS
    ]
    jobs.append({"kind": "checkpoint", "name": "checkpoint",
                 "path": str(folder / "model.ckpt")})
    jobs.append({"kind": "signatures", "name": "signatures"})
    (folder / "jobs.json").write_text(json.dumps(jobs))
    np.savez(folder / "in.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"),
                                          mnist_subset())))
    return [folder / "jobs.json", folder / "in.npz", folder / "out.npz"]


def compat_session_results(folder):
    """tfrnn's runs of the same programs in Session graphs: {job: result or
    the exception it raised (raised again by its test)}."""
    results = {}
    for name, case in CASES.items():
        try:
            results[name] = tf1_programs.rnn_case(nn, name, case)
        except Exception as e:  # noqa: BLE001
            results[name] = e
    for kind in TUTORIALS:
        try:
            results[f"tutorial_{kind}"] = tf1_programs.train_tutorial(
                nn, kind, mnist_subset(), TUTORIAL_STEPS,
                str(folder / f"compat_{kind}.ckpt"), 0.0,
            )
        except Exception as e:  # noqa: BLE001
            results[f"tutorial_{kind}"] = e
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(TF1's results, tfrnn's Session-graph results, folder with TF1's
    checkpoint). TF1 runs in its subprocess while tfrnn runs here: on two
    cores the two overlap."""
    folder = tmp_path_factory.mktemp("tf1_compat")
    mine = run_beside_tf1(
        "tf1_compat_reference.py", write_tf1_jobs(folder), folder / "log.txt",
        lambda: compat_session_results(folder), timeout=900,
    )
    results = {}
    with np.load(folder / "out.npz") as data:
        for key in data.files:
            name, field = key.split("/", 1)
            results.setdefault(name, {})[field] = data[key]
    return results, mine, folder


@pytest.fixture(scope="module")
def tf1(runs):
    """(TF1's results, the folder holding its checkpoints)."""
    results, _, folder = runs
    return results, folder


def mine(runs, name):
    result = runs[1][name]
    if isinstance(result, Exception):
        raise result
    return result


def assert_close(actual, expected, keys=None, atol=1e-6, scaled=False):
    """Each key agrees to atol (times max(1, max |expected|) when scaled)."""
    keys = sorted(expected) if keys is None else keys
    assert sorted(actual) == sorted(expected), (sorted(actual), sorted(expected))
    failures, worst = [], 0.0
    for key in keys:
        a, e = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == e.shape, f"{key}: shape {a.shape} != {e.shape}"
        if not a.size:
            continue
        diff = float(np.max(np.abs(a - e)))
        tolerance = atol * max(1.0, float(np.max(np.abs(e)))) if scaled else atol
        worst = max(worst, diff / (tolerance / atol))
        if not diff <= tolerance:
            failures.append(f"{key}: max abs difference {diff:.3g} > {tolerance:.3g}")
    assert not failures, "\n".join(failures)
    return worst


def compare(actual, expected):
    forward = sorted(k for k in expected if k.startswith("forward/"))
    grads = sorted(k for k in expected if k.startswith("grad/"))
    assert_close(actual, expected, forward, atol=1e-6)
    assert_close(actual, expected, grads, atol=1e-6, scaled=True)


def test_signatures_are_tf1s(runs):
    """Every function and cell constructor takes TF1's arguments, in TF1's
    order, with TF1's defaults (so positional TF1 calls mean the same)."""
    expected = runs[0]["signatures"]
    actual = tf1_programs.signatures(nn)
    assert sorted(actual) == sorted(expected)
    for key in sorted(expected):
        assert str(actual[key]) == str(expected[key]), key


# Each cell and function in a Session graph: the same program as TF1's ------


@pytest.mark.parametrize("name", sorted(CASES))
def test_session_graph_matches_tf1(runs, name):
    compare(mine(runs, name), runs[0][name])


# ... eagerly and in tf.function ----------------------------------------------

# Eager cell scopes are numbered as TF1 numbers them (basic_lstm_cell_1 for the
# second one made): the case's TF1 name drops the number.
_NUMBERED = re.compile(
    r"\b(basic_rnn_cell|basic_lstm_cell|lstm_cell|gru_cell|multi_rnn_cell|"
    r"minimal_rnn_cell)_\d+\b"
)


def eager_case(name, case, execution):
    """`rnn_case` without a graph: variables made with drawn values by name."""
    created = []

    def with_drawn_value(next_creator, **kwargs):
        tf1_name = _NUMBERED.sub(r"\1", kwargs["name"])
        shape = tf.convert_to_tensor(kwargs["initial_value"]).shape.as_list()
        kwargs["initial_value"] = tf1_programs.draw(tf1_name, shape)
        variable = next_creator(**kwargs)
        created.append((tf1_name, variable))
        return variable

    x_value, lengths = tf1_programs.case_inputs(name, case)
    cells = tf1_programs.make_cells(nn, case)  # outside tf.function, as TF2 wants

    def compute(x):
        with tf.variable_creator_scope(with_drawn_value), tf.GradientTape() as tape:
            tape.watch(x)
            results = tf1_programs.run_function(nn, case, x, lengths, cells)
            loss = tf1_programs.loss_of(name, results)
        variables = [v for _, v in sorted(created, key=lambda c: c[0])]
        return results, tape.gradient(loss, [x] + variables)

    if execution == "function":
        compute = tf.function(compute)
    results, grads = compute(tf.constant(x_value))
    out = {f"forward/{k}": v.numpy() for k, v in results.items()}
    out["grad/x"] = grads[0].numpy()
    for (tf1_name, _), grad in zip(sorted(created, key=lambda c: c[0]), grads[1:]):
        out[f"grad/{tf1_name}"] = grad.numpy()
    return out


# Eagerly: the padded cases (unpadded ones run in the Session graph above).
EAGER_CASES = sorted(
    n for n, c in CASES.items() if c["cell"] not in GRAPH_ONLY_CELLS and c["lengths"]
)
FUNCTION_CASES = [
    "dynamic_rnn-lstm_full-padded",
    "static_rnn-multi-padded",
    "bidirectional_dynamic_rnn-basic_lstm-gru-padded",
]


@pytest.mark.parametrize("name", EAGER_CASES)
def test_eager_matches_tf1(tf1, name):
    results, _ = tf1
    compare(eager_case(name, CASES[name], "eager"), results[name])


@pytest.mark.parametrize("name", FUNCTION_CASES)
def test_tf_function_matches_tf1(tf1, name):
    results, _ = tf1
    compare(eager_case(name, CASES[name], "function"), results[name])


# The two tutorial programs ------------------------------------------------


@pytest.mark.parametrize("kind", TUTORIALS)
def test_tutorial_matches_tf1(runs, kind):
    """The TF1 tutorial with only its RNN names replaced: same variables, same
    losses and test accuracies step by step, same final predictions, and its
    Saver checkpoint written at the same step."""
    expected = runs[0][f"tutorial_{kind}"]
    actual = mine(runs, f"tutorial_{kind}")
    assert str(actual["names"]) == str(expected["names"])
    np.testing.assert_allclose(actual["losses"], expected["losses"], rtol=1e-5)
    np.testing.assert_array_equal(actual["accuracies"], expected["accuracies"])
    np.testing.assert_allclose(actual["predictions"], expected["predictions"], atol=1e-5)
    assert int(actual["saved"]) == int(expected["saved"]) == 0
    assert (runs[2] / f"compat_{kind}.ckpt.index").exists()


# A checkpoint written by TF1's Saver ----------------------------------------


def test_tf1_checkpoint_restores_into_compat_graph(tf1):
    """tf.compat.v1.train.Saver restores TF1's checkpoint into the migrated
    program (every variable found by its TF1 name): same predictions."""
    results, folder = tf1
    expected = results["checkpoint"]
    actual = tf1_programs.checkpoint_program(nn, str(folder / "model.ckpt"), save=False)
    assert str(actual["names"]) == str(expected["names"])
    assert_close(actual, expected, [k for k in expected if k != "names"], atol=1e-6)


def main_api_checkpoint_predictions(path):
    """The checkpoint program's predictions by main-API cells loaded from
    TF1's checkpoint at `path` with load_tf1_checkpoint."""
    x = tf.constant(tf1_programs.draw("checkpoint/x", (4, 5, 3), scale=1.0))
    stack = tfrnn.MultiRNNCell([
        tfrnn.LSTMCell(5, use_peepholes=True, cell_clip=1.0, num_proj=4),
        keras.layers.GRUCell(4, reset_after=False),
    ])
    fw, bw = tfrnn.LSTMCell(5), keras.layers.SimpleRNNCell(4)
    static_cell = keras.layers.LSTMCell(3)
    for cell, scope in ((stack, "rnn"), (fw, "bidirectional_rnn/fw"),
                        (bw, "bidirectional_rnn/bw"), (static_cell, "static")):
        tf1_checkpoint.load_tf1_checkpoint(path, cell, scope)
    outputs, ([h0, c0], h1) = tfrnn.dynamic_rnn(stack, x, sequence_length=[5, 0, 3, 1])
    (out_fw, out_bw), ([h_fw, _], state_bw) = tfrnn.bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=[5, 2, 0, 4]
    )
    static_outputs, [_, static_c] = tfrnn.static_rnn(static_cell, x)
    actual = {
        "stack/outputs": outputs, "stack/c0": c0, "stack/h0": h0, "stack/h1": h1,
        "bi/fw": out_fw, "bi/bw": out_bw, "bi/state_fw_h": h_fw,
        "bi/state_bw": state_bw, "static/outputs": static_outputs,
        "static/c": static_c,
    }
    return {k: v.numpy() for k, v in actual.items()}


def test_tf1_checkpoint_loads_into_main_api_cells(tf1):
    """load_tf1_checkpoint rearranges TF1's weights into Keras-convention cells
    (tfrnn.LSTMCell with peepholes and projection, Keras GRUCell,
    SimpleRNNCell, Keras's own LSTMCell): the main API predicts the same."""
    results, folder = tf1
    expected = {k[len("prediction/"):]: v for k, v in results["checkpoint"].items()
                if k.startswith("prediction/")}
    actual = main_api_checkpoint_predictions(folder / "model.ckpt")
    assert_close(actual, expected, atol=1e-6)


def main_api_tutorial_predictions(path, kind):
    """The tutorial's test predictions by the main API from TF1's checkpoint:
    tfrnn.LSTMCell loaded by load_tf1_checkpoint, the softmax layer's
    `weights` and `biases` read from the checkpoint as they are."""
    cell = tfrnn.LSTMCell(256 if kind == "static" else 100)
    tfrnn.load_tf1_checkpoint(path, cell, scope="rnn")
    reader = tf.train.load_checkpoint(str(path))
    _, _, x_test, _ = mnist_subset()
    if kind == "static":
        last_output, _ = tfrnn.static_rnn(cell, x_test, return_sequences=False)
    else:
        _, [last_output, _] = tfrnn.dynamic_rnn(cell, x_test)  # TF1's final_state[1]
    logits = tf.matmul(last_output, reader.get_tensor("weights")) + reader.get_tensor(
        "biases"
    )
    return tf.nn.softmax(logits).numpy()


@pytest.mark.parametrize("kind", TUTORIALS)
def test_tutorial_checkpoint_predicts_the_same_in_the_main_api(tf1, kind):
    """The checkpoint the TF1 tutorial wrote with its Saver, run by the main
    API: TF1's test predictions at that checkpoint."""
    results, folder = tf1
    expected = results[f"tutorial_{kind}"]["saved_predictions"]
    actual = main_api_tutorial_predictions(folder / f"tutorial_{kind}.ckpt", kind)
    np.testing.assert_allclose(actual, expected, atol=1e-6)


# Main-API bidirectional RNNs against TF1's ----------------------------------


def drawn_tf1_weights(tf1_result):
    """{TF1 variable name: drawn value}, the weights TF1's run used."""
    return {
        key[len("grad/"):]: tf1_programs.draw(key[len("grad/"):], value.shape)
        for key, value in tf1_result.items()
        if key.startswith("grad/") and key != "grad/x"
    }


def main_api_bidirectional(tf1_result, function, execution):
    """(results, TF1's) of tfrnn's `function` with tfrnn.LSTMCell forward and
    Keras GRUCell backward, loaded with the weights of TF1's case run."""
    name = f"{function}-basic_lstm-gru-padded"
    fw, bw = tfrnn.LSTMCell(5), keras.layers.GRUCell(5, reset_after=False)
    weights = drawn_tf1_weights(tf1_result)
    tf1_checkpoint.load_tf1_checkpoint(
        weights, fw, "bidirectional_rnn/fw", forget_bias=0.7
    )
    tf1_checkpoint.load_tf1_checkpoint(weights, bw, "bidirectional_rnn/bw")
    x_value, lengths = tf1_programs.case_inputs(name, CASES[name])
    unroll = getattr(tfrnn, function)

    def compute(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            (out_fw, out_bw), ([h_fw, c_fw], h_bw) = unroll(fw, bw, x, sequence_length=lengths)
            results = {"state/0": c_fw, "state/1": h_fw, "state/2": h_bw}
            if function == "static_bidirectional_rnn":  # TF1 concatenates
                results["outputs/0"] = tf.concat([out_fw, out_bw], -1)
            else:
                results.update({"outputs/0": out_fw, "outputs/1": out_bw})
            loss = tf1_programs.loss_of(name, results)
        return results, tape.gradient(loss, x)

    if execution == "function":
        compute = tf.function(compute)
    results, grad_x = compute(tf.constant(x_value))
    actual = {f"forward/{k}": v.numpy() for k, v in results.items()}
    actual["grad/x"] = grad_x.numpy()
    return actual, {k: v for k, v in tf1_result.items() if k in actual}


@pytest.mark.parametrize("execution", ["eager", "function"])
@pytest.mark.parametrize("function", ["bidirectional_dynamic_rnn", "static_bidirectional_rnn"])
def test_main_api_bidirectional_matches_tf1(tf1, function, execution):
    """tfrnn.bidirectional_dynamic_rnn / static_bidirectional_rnn with Keras
    cells loaded with TF1's weights: TF1's outputs and states (lengths 0 and T
    included) and the same input gradient. TF1's BasicLSTMCell has
    forget_bias=0.7, tfrnn's LSTMCell 1.0: the loader moves the difference
    into the bias."""
    results, _ = tf1
    actual, expected = main_api_bidirectional(
        results[f"{function}-basic_lstm-gru-padded"], function, execution
    )
    assert_close(actual, expected, sorted(k for k in actual if k.startswith("forward/")))
    assert_close(actual, expected, ["grad/x"], scaled=True)
