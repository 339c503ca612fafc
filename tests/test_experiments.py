"""experiments/: tiny runs write their JSON, Markdown and PNG with the documented fields.

No test asserts a timing (the machine is shared); only that numbers are there,
of the right type, and that the structural results hold (a static model
refuses another length, a dynamic one takes it).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # experiments/ is not an installed package
from experiments import harness  # noqa: E402
from tfrnn.tasks.classify import data  # noqa: E402
NUMBER = (int, float)


def run_module(module, *flags, timeout=300, log_level="2"):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": log_level,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    if log_level is None:  # as a user runs it
        del env["TF_CPP_MIN_LOG_LEVEL"]
    result = subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def assert_environment(record):
    env = record["environment"]
    for key in ("date", "device", "tensorflow", "keras", "python", "tfrnn"):
        assert isinstance(env[key], str) and env[key], key


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


# --- static_vs_dynamic -------------------------------------------------------------

GROWTH_NUMBERS = (
    "trace_seconds", "first_step_seconds", "median_step_ms", "examples_per_second",
    "memory_bytes", "peak_memory_bytes", "memory_before_build_bytes", "export_bytes",
    "export_seconds",
)  # fmt: skip


@pytest.fixture(scope="module")
def static_vs_dynamic(tmp_path_factory):
    output = tmp_path_factory.mktemp("svd")
    run_module(
        "experiments.static_vs_dynamic",
        "--quick",
        f"--output={output}",
        "--systems=tfrnn_static,keras_while",
        "--time_steps=28",
        "--units=8",
        "--warmup_steps=0",
        "--timed_steps=2",
    )
    records = json.loads((output / "static_vs_dynamic-quick.json").read_text())
    return output, records


def test_static_vs_dynamic_growth_records(static_vs_dynamic):
    _, records = static_vs_dynamic
    growth = {r["system"]: r for r in records}
    assert len(records) == 2 and set(growth) == {"tfrnn_static", "keras_while"}
    for system, r in growth.items():
        assert r["status"] == "ok", r
        assert_environment(r)
        assert (r["cell"], r["units"], r["T"], r["F"], r["batch"]) == ("lstm", 8, 28, 28, 128)
        for key in GROWTH_NUMBERS:
            assert isinstance(r[key], NUMBER) and r[key] >= 0, (system, key)
        assert isinstance(r["graph_ops"], int) and r["graph_ops"] > 0
        assert r["steps_timed"] == 2
        assert r["memory_kind"] in ("cpu_rss", "gpu")
        if r["memory_kind"] == "cpu_rss":
            assert isinstance(r["peak_rss_reset"], bool)
        assert isinstance(r["budget_seconds"], int) and r["process_seconds"] > 0
        phases = ["build", "first_step", "steps", "export", "other_length"]
        phases += ["forward", "keras_export"] if system.startswith("tfrnn") else []
        assert r["completed_phases"] == phases
    static, loop = growth["tfrnn_static"], growth["keras_while"]
    assert static["accepts_other_length"] is False
    assert "T=28" in static["other_length_error"]
    assert loop["accepts_other_length"] is True and loop["other_length_error"] is None
    for key in ("forward_ms", "forward_all_states_ms", "keras_export_bytes"):
        assert isinstance(static[key], NUMBER) and static[key] > 0
    assert "forward_ms" not in loop


def test_static_vs_dynamic_reports(static_vs_dynamic):
    output, records = static_vs_dynamic
    markdown = (output / "static_vs_dynamic-quick.md").read_text()
    assert "## Verdicts" in markdown and "## Growth with T" in markdown
    assert "Time to accuracy" not in markdown  # measured by experiments.bench
    for claim in (
        "build",
        "memory",
        "exports a larger model",
        "sequence length",
        "other lengths",
    ):
        assert claim in markdown
    # one static and one dynamic system of different families: half the claims
    # have a pair, the length claims have one model each
    assert "1 of 1 exported models (tfrnn_static) refused T/2 steps" in markdown
    assert "1 of 1 exported models (keras_while) accepted T/2 steps" in markdown
    assert "| tfrnn_static | lstm | 8 | 28 | 28 | ok |" in markdown
    assert_png(output / "static_vs_dynamic_growth-quick.png")


def test_static_vs_dynamic_over_budget_skips_larger_t(tmp_path):
    from experiments import static_vs_dynamic as svd

    s = harness.settings(
        svd,
        True,
        dict(systems=["tfrnn_dynamic", "keras_cudnn"], time_steps=["56", "28"], budget_seconds=1),
    )
    svd.run(s, tmp_path, quick=True, log=lambda line: None)
    records = json.loads((tmp_path / "static_vs_dynamic-quick.json").read_text())
    # smallest T first; keras_cudnn is skipped without a process where no GPU is seen
    statuses = [(r["system"], r["T"], r["status"]) for r in records]
    assert statuses[0] == ("tfrnn_dynamic", 28, "over_budget")
    assert statuses[2] == ("tfrnn_dynamic", 56, "skipped")
    assert records[0]["budget_seconds"] == 1
    assert "tfrnn_dynamic lstm-32 T=28 was over_budget" in records[2]["note"]
    cudnn = [r for r in records if r["system"] == "keras_cudnn"]
    assert [r["T"] for r in cudnn] == [28, 56]
    if cudnn[0]["status"] == "skipped":  # a CPU: no process was started
        assert cudnn[0]["note"] == "no GPU visible (cuDNN runs only on a GPU)"
    for r in records:
        assert_environment(r)
    assert (tmp_path / "static_vs_dynamic-quick.md").exists()
    assert (tmp_path / "static_vs_dynamic_growth-quick.png").exists()


def test_verdicts_from_made_up_records():
    from experiments import static_vs_dynamic as svd

    def record(system, t, **values):
        return {"system": system, "cell": "lstm", "T": t, "status": "ok", **values}

    records = [
        record("tfrnn_static", 28, trace_seconds=1.0, memory_bytes=100, export_bytes=50,
               median_step_ms=10.0, accepts_other_length=False, other_length_error="refused"),
        record("tfrnn_dynamic", 28, trace_seconds=1.0, memory_bytes=50, export_bytes=100,
               median_step_ms=20.0, accepts_other_length=True, forward_ms=2.0,
               forward_all_states_ms=3.0),
        record("tfrnn_static", 784, trace_seconds=30.0, memory_bytes=300, export_bytes=60,
               median_step_ms=40.0),
        record("tfrnn_dynamic", 784, trace_seconds=1.0, memory_bytes=100, export_bytes=100,
               median_step_ms=20.0),
        # an older result's time-to-accuracy record is no growth record
        {"measurement": "accuracy", "system": "tfrnn_static", "cell": "lstm", "T": 28,
         "status": "ok", "trace_seconds": 1000.0},
    ]  # fmt: skip
    found = {claim: (verdict, evidence) for claim, verdict, evidence in svd.verdicts(records)}
    trace = found["static takes longer to build (trace the training step)"]
    assert trace[0] == "depends (on T)"
    assert trace[1].startswith("lstm, static vs dynamic, tfrnn: T=28: 1 vs 1 s (x1); ")
    assert "T=784: 30 vs 1 s (x30)" in trace[1]
    assert "Keras unroll=True vs False (not measured): -" in trace[1]
    assert found["static uses more memory (dynamic uses less)"][0] == "confirmed"
    assert found["static exports a larger model"][0] == "refuted"
    assert found["(implied) static runs each training step faster"][0] == "depends (on T)"
    assert found["static takes longer to build (graph ops)"][0] == "not measured"
    state = found["static carries every step's intermediate state; dynamic keeps only the final state"]
    assert state[0].startswith("depends") and "T=28: 3 vs 2 ms" in state[1]
    length = found["static must be used with the sequence length it was trained on"]
    assert length == ("confirmed", "1 of 1 exported models (tfrnn_static) refused T/2 steps; e.g. `refused`.")
    assert found["dynamic accepts other lengths"][0] == "confirmed"
    assert {verdict for _, verdict, _ in svd.verdicts([])} == {"not measured"}
    # the committed results still render: every claim judged, time to accuracy left out
    committed = json.loads((harness.RESULTS / "static_vs_dynamic.json").read_text())
    text = svd.markdown(committed, "growth.png")
    assert "not measured" not in text and "Time to accuracy" not in text
    assert "| keras_while | lstm | 128 | 784 | 1 | ok |" in text  # keras_loop, renamed


def test_chunked_pixels_reads_consecutive_pixels():
    svd = harness

    images = np.arange(2 * 784, dtype=np.int64).reshape(2, 28, 28) % 256
    images = images.astype(np.uint8)
    for t in (28, 56, 784):
        x = svd.chunked_pixels(images, t)
        assert x.shape == (2, t, 784 // t) and x.dtype == np.float32
        np.testing.assert_array_equal(
            x.reshape(2, 784), images.reshape(2, 784) / np.float32(255)
        )
    np.testing.assert_array_equal(
        svd.chunked_pixels(images, 56)[0, 1], images[0, 0, 14:] / np.float32(255)
    )
    with pytest.raises(ValueError, match="must divide 784"):
        svd.chunked_pixels(images, 100)


def test_spectrum_quick(tmp_path):
    """dynamic_rnn(unroll=k) measured per k: the graph grows with k, every
    phase but the T/2 one ran, and the verdict names the fastest k."""
    from experiments import spectrum

    s = harness.settings(
        spectrum,
        True,
        dict(units=8, short_unrolls=["4", "1"], long_unrolls=[], warmup_steps=0, timed_steps=2),
    )
    paths = spectrum.run(s, tmp_path, quick=True, log=lambda line: None)
    records = json.loads(paths["json"].read_text())
    assert [(r["cell"], r["T"], r["unroll"]) for r in records] == [
        ("lstm", 28, 1),
        ("lstm", 28, 4),
    ]
    for r in records:
        assert r["status"] == "ok", r["note"]
        assert_environment(r)
        assert r["completed_phases"] == ["build", "first_step", "steps", "export"]
        for key in ("trace_seconds", "median_step_ms", "memory_bytes", "export_bytes"):
            assert isinstance(r[key], NUMBER) and r[key] > 0
    assert records[1]["graph_ops"] > records[0]["graph_ops"]
    markdown = paths["md"].read_text()
    assert "- **lstm, T=28**: fastest step at k=" in markdown
    assert "| lstm | 28 | 4 | ok |" in markdown
    assert "## References" not in markdown  # --references=none in a quick run
    assert_png(paths["png"])
    with pytest.raises(ValueError, match="each k in 1..T=28"):
        harness.settings(spectrum, True, dict(short_unrolls=["56"]))


def test_spectrum_references_and_committed_results():
    """--references=measure adds static and Keras at each T; committed ones come
    from static_vs_dynamic.json, and the committed sweep still renders."""
    from experiments import spectrum

    s = harness.settings(spectrum, False, dict(cells=["gru"], references="measure"))
    configs = spectrum.configurations(s)
    assert [(c["system"], c["T"], c["unroll"]) for c in configs[:7]] == [
        ("tfrnn_dynamic", 28, k) for k in (1, 2, 4, 7, 14, 28)
    ] + [("tfrnn_dynamic", 784, 1)]
    references = [(c["system"], c["T"]) for c in configs if c["unroll"] is None]
    assert references == [(system, t) for t in (28, 784) for system in spectrum.REFERENCES]
    assert all(c["phases"] == ["export"] and c["cell"] == "gru" for c in configs)
    s = harness.settings(spectrum, False, {})
    committed = json.loads((harness.RESULTS / "spectrum.json").read_text())
    refs = spectrum.references(s, committed)
    assert {(r["system"], r["T"]) for r in refs} == {
        (system, t) for system in spectrum.REFERENCES for t in (28, 56, 112, 196, 392, 784)
    }
    assert all(r["status"] == "ok" and r["units"] == 128 for r in refs)
    lines = spectrum.verdicts(committed, refs)
    assert len(lines) == 6 and lines[0].startswith("- **lstm, T=28**: fastest step at k=28 (30.8 ms")
    assert "×0.97 of static's" in lines[0]


# --- gradient_flow -----------------------------------------------------------------


def test_gradient_flow_float64_twins_give_the_float32_norms():
    """`measure` on float64 copies of the layers: the norms of float32 (up to
    its rounding); the equality with the true dL/dh_t is tests/test_semantics.py's."""
    import keras
    import tensorflow as tf

    import tfrnn
    from experiments import gradient_flow

    for cell in (keras.layers.GRUCell(4), tfrnn.LSTMCell(4)):
        dense = keras.layers.Dense(3)
        x, y = tf.random.normal([2, 6, 3]), tf.constant([0, 2])
        cell.build((None, 3))
        dense.build((None, 4))
        norms32 = gradient_flow.measure(cell, dense, x, y, "float32")
        norms64 = gradient_flow.measure(cell, dense, x, y, "float64")
        assert norms64["measure_dtype"] == "float64"
        assert min(norms64["grad_h_norm"]) > 0
        np.testing.assert_allclose(norms32["grad_h_norm"], norms64["grad_h_norm"], rtol=1e-4)
        if isinstance(cell, tfrnn.LSTMCell):
            assert norms64["grad_c_norm"][-1] > 0  # c_T reaches L through h_T
            np.testing.assert_allclose(norms32["grad_c_norm"], norms64["grad_c_norm"], rtol=1e-4)
        else:
            assert norms64["grad_c_norm"] is None


def test_gradient_flow_quick(tmp_path):
    from experiments import gradient_flow

    s = harness.settings(
        gradient_flow,
        True,
        dict(cells=["rnn", "lstm"], time_steps=56, train_steps=2, test_examples=50),
    )
    gradient_flow.run(s, tmp_path, quick=True, log=lambda line: None)
    records = json.loads((tmp_path / "gradient_flow-quick.json").read_text())
    assert [(r["cell"], r["phase"]) for r in records] == [
        ("rnn", "init"),
        ("rnn", "trained"),
        ("lstm", "init"),
        ("lstm", "trained"),
    ]
    for r in records:
        assert_environment(r)
        assert (r["T"], r["F"], r["units"], r["batch"]) == (56, 14, 16, 4)
        assert len(r["grad_h_norm"]) == 56
        assert all(isinstance(v, float) and v >= 0 for v in r["grad_h_norm"])
        assert r["grad_h_norm"][-1] > 0
        assert r["zero_steps"] == 0 and r["measure_dtype"] == "float64"
        assert r["first_to_last_ratio"] == r["grad_h_norm"][0] / r["grad_h_norm"][-1]
        assert 0.0 <= r["test_accuracy"] <= 1.0
        if r["cell"] == "lstm":
            assert len(r["grad_c_norm"]) == 56
        else:
            assert r["grad_c_norm"] is None
    assert records[1]["train_steps"] == 2 and isinstance(
        records[1]["train_loss"], float
    )
    assert_png(tmp_path / "gradient_flow-quick.png")


# --- cells -------------------------------------------------------------------------


def cells_quick(tmp_path, dataset, models):
    from experiments import cells

    s = harness.settings(
        cells,
        True,
        dict(
            models=models,
            datasets=[dataset],
            train_examples=256,
            test_examples=128,
            units=8,
            deterministic=False,  # op determinism is process-wide: not in pytest's
        ),
    )
    cells.run(s, tmp_path, quick=True, log=lambda line: None)
    records = json.loads((tmp_path / "cells-quick.json").read_text())
    assert [(r["dataset"], r["model_name"]) for r in records] == [
        (dataset, model) for model in models
    ]
    for r in records:
        assert_environment(r)
        assert r["mode"] == "dynamic" and r["epochs"] == 1
        assert r["train_examples"] == 256 and r["test_examples"] == 128
        assert 0.0 <= r["test_accuracy"] <= r["best_test_accuracy"] <= 1.0
        assert isinstance(r["target_reached"], bool)
        assert (r["seconds_to_target"] is None) == (not r["target_reached"])
        assert isinstance(r["parameters"], int) and r["parameters"] > 0
        assert isinstance(r["median_step_ms"], NUMBER)
        assert isinstance(r["step_seconds"], NUMBER) and r["step_seconds"] > 0
    markdown = (tmp_path / "cells-quick.md").read_text()
    assert markdown.count(f"\n| {dataset} |") == len(models)
    return records


def test_cells_quick(tmp_path):
    """MNIST (shipped with tfrnn): the quick mode runs on any machine."""
    records = cells_quick(tmp_path, "mnist", ["lstm_2layers", "cnn_rnn"])
    assert records[0]["layers"] == 2 and records[1]["model"] == "cnn_rnn"
    assert {r["target_accuracy"] for r in records} == {0.98}


@pytest.mark.optional_data
@pytest.mark.skipif(
    not data.fashion_mnist_available(),
    reason=f"Fashion-MNIST not in {data.FASHION_MNIST_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_cells_fashion_mnist(tmp_path):
    records = cells_quick(tmp_path, "fashion_mnist", ["gru"])
    assert records[0]["target_accuracy"] == 0.88


# --- steps -------------------------------------------------------------------------


def test_steps_quick(tmp_path):
    """Every system timed in every round, the ratios read from the same rounds,
    and the same model size for all, the CLI's step included."""
    run_module("experiments.steps", "--quick", f"--output={tmp_path}")
    records = json.loads((tmp_path / "steps-quick.json").read_text())
    names = ["tfrnn_dynamic", "tfrnn_static", "keras_while", "keras_unroll", "cli", "cli_bf16"]
    assert [r["system"] for r in records] == names
    baselines = {r["system"]: r for r in records if r["system"] in ("keras_while", "cli")}
    assert baselines["keras_while"]["ratio_to_keras_while"] == 1.0
    assert baselines["cli"]["ratio_to_cli"] == 1.0
    for r in records:
        assert_environment(r)
        assert r["batch_size"] == 32 and len(r["round_ms"]) == 3
        assert r["threads"] == {"intra_op": 0, "inter_op": 0}
        assert all(ms > 0 for ms in r["round_ms"])
        assert r["median_ms"] == pytest.approx(np.median(r["round_ms"]), abs=1e-3)
        for name, baseline in baselines.items():
            per_round = np.array(r["round_ms"]) / np.array(baseline["round_ms"])
            assert r[f"ratio_to_{name}"] == pytest.approx(np.median(per_round), 1e-3)
        assert r["parameters"] == 28 * 64 + 16 * 64 + 64 + 16 * 10 + 10
    table = (tmp_path / "steps-quick.md").read_text()
    assert table.count("| 0:0 | 32 | ") == 6 and "| 0:0 | 32 | cli_bf16 |" in table


def test_quick_without_output_writes_to_a_scratch_directory():
    """`--quick` never writes over experiments/results: a new directory, printed;
    and without TF_CPP_MIN_LOG_LEVEL, no TensorFlow start-up lines on stderr."""
    before = sorted(p.name for p in harness.RESULTS.iterdir())
    result = run_module(
        "experiments.steps",
        "--quick",
        "--systems=tfrnn_dynamic",
        "--rounds=1",
        "--steps=1",
        "--batch_sizes=4",
        log_level=None,
    )
    for noise in ("absl::InitializeLog", "oneDNN", "cuda", "I0000"):
        assert noise not in result.stderr, result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if "scratch directory" in x)
    scratch = pathlib.Path(line.rsplit(" ", 1)[1])
    try:
        assert scratch.is_dir() and harness.RESULTS not in scratch.parents
        assert sorted(p.name for p in scratch.iterdir()) == [
            "steps-quick.json",
            "steps-quick.md",
        ]
        assert sorted(p.name for p in harness.RESULTS.iterdir()) == before
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def test_harness_and_the_pytorch_worker_load_no_tensorflow():
    """The PyTorch worker (bench -> baselines -> harness) must not carry
    TensorFlow's memory into the process being measured."""
    code = (
        "import sys, experiments.harness, experiments.bench, experiments.baselines; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "print(sorted(experiments.harness.environment()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for key in ("date", "device", "tensorflow", "keras", "tfrnn"):
        assert f"'{key}'" in result.stdout


def test_steps_rounds_put_every_system_in_every_place():
    names = ["a", "b", "c"]
    orders = [harness.rotate(names, r) for r in range(3)]
    assert orders[1] == ["b", "c", "a"]
    for place in range(3):
        assert sorted(order[place] for order in orders) == names


def test_command_lines_refuse_bad_flags(tmp_path):
    """The CLIs check their flags before TensorFlow starts (the quick runs above
    go through the same `settings` functions in-process)."""
    for module, flag, message in (
        ("experiments.static_vs_dynamic", "--time_steps=100", "--time_steps=100 must divide 784"),
        (
            "experiments.static_vs_dynamic",
            "--cells=lstm,bogus",
            "'bogus' is not one of",
        ),
        ("experiments.gradient_flow", "--time_steps=100", "must divide 784"),
        ("experiments.cells", "--models=lstm,bogus", "'bogus' is not one of"),
        ("experiments.steps", "--batch_sizes=128,x", "give integers"),
        ("experiments.gradient_flow", "--cells=", "--cells: name one or more of rnn, gru, lstm"),
        ("experiments.spectrum", "--long_T=100", "--long_T=100 must divide 784"),
        ("experiments.steps", "--rounds=0", "--rounds=0 must be > 0"),
        ("experiments.steps", "--systems=torch", "'torch' is not one of"),
        ("experiments.kernels", "--shapes=huge", "'huge' is not one of"),
        ("experiments.kernels", "--thread_settings=1-2", "'1-2' is not INTRA:INTER"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", module, flag, f"--output={tmp_path}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and message in result.stderr, (
            module,
            result.stderr,
        )
    assert not any(tmp_path.iterdir())


def test_steps_thread_processes_quick(tmp_path):
    """With --thread_processes, each thread setting measures in a process of its
    own that has the threads asked for; ratios to the first setting, per system."""
    run_module(
        "experiments.steps", "--quick", "--systems=keras_while,cli_unroll_2", "--rounds=2",
        "--steps=1", "--batch_sizes=8", "--thread_processes=1", f"--output={tmp_path}",
    )  # fmt: skip
    records = json.loads((tmp_path / "steps-quick.json").read_text())
    assert [(r["threads"]["intra_op"], r["threads"]["inter_op"], r["system"]) for r in records] == [
        (0, 0, "keras_while"), (0, 0, "cli_unroll_2"), (1, 2, "keras_while"), (1, 2, "cli_unroll_2"),
    ]  # fmt: skip
    for r in records:
        assert_environment(r)
        assert len(r["process_median_ms"]) == 1 and len(r["round_ms"]) == 2
        assert r["median_ms"] == r["process_median_ms"][0] > 0
        assert r["ratio_to_cli"] is None
        first = next(f for f in records if f["system"] == r["system"])
        assert r["ratio_to_first_threads"] == pytest.approx(r["median_ms"] / first["median_ms"])
    assert [r["ratio_to_first_threads"] for r in records[:2]] == [1.0, 1.0]
    assert isinstance(records[3]["ratio_to_keras_while"], float)
    assert "× first threads" in (tmp_path / "steps-quick.md").read_text()


def test_steps_refuses_bad_thread_flags(tmp_path):
    from experiments import steps

    with pytest.raises(ValueError, match="'cli_fp8' is not one of"):
        harness.settings(steps, True, dict(systems=["cli_fp8"]))
    with pytest.raises(ValueError, match=r"--threads=\[1\]: give INTRA,INTER"):
        harness.settings(steps, True, dict(threads=["1"]))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.steps", "--thread_settings=0:0,1-2", f"--output={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: --thread_settings: '1-2' is not INTRA:INTER, e.g. 0:0,1:2"
    ]
    assert not any(tmp_path.iterdir())


# --- kernels -------------------------------------------------------------------------


def test_kernels_quick(tmp_path):
    """Every system of a shape and cell timed in the same rounds, ratios read
    from them, the kernel `auto` runs and the load recorded; the pre-transposed
    generic LSTM is skipped for the GRU with its reason, PyTorch where it does
    not import."""
    import importlib.util

    run_module("experiments.kernels", "--quick", f"--output={tmp_path}")
    records = json.loads((tmp_path / "kernels-quick.json").read_text())
    by_system = {(r["cell"], r["system"]): r for r in records}
    assert len(by_system) == len(records) == 12  # 6 systems x 2 cells
    assert by_system[("gru", "tfrnn_pretransposed")]["status"] == "skipped"
    assert "LSTM only" in by_system[("gru", "tfrnn_pretransposed")]["note"]
    no_torch = importlib.util.find_spec("torch") is None
    assert (by_system[("lstm", "torch")]["status"] == "skipped") == no_torch
    for (cell, system), r in by_system.items():
        assert_environment(r)
        assert (r["shape"], r["batch"], r["T"], r["features"], r["units"]) == ("tiny", 4, 6, 3, 8)
        if r["status"] == "skipped":
            continue
        assert r["threads"] == {"intra_op": 0, "inter_op": 0}
        assert len(r["round_ms"]) == 2 and all(ms > 0 for ms in r["round_ms"])
        assert r["median_ms"] == pytest.approx(np.median(r["round_ms"]), abs=1e-3)
        generic = by_system[(cell, "tfrnn_generic")]["round_ms"]
        per_round = np.array(r["round_ms"]) / np.array(generic)
        assert r["ratio_to_tfrnn_generic"] == pytest.approx(np.median(per_round), 1e-3)
        assert r["auto_kernel"] == "generic"  # 8 units: below the rule's width
        assert len(r["load_average_1min"]) == 2
    table = (tmp_path / "kernels-quick.md").read_text()
    assert "| 0:0 | tiny [4, 6, 3, 8] | lstm | tfrnn_fused |" in table
    assert "measured for the LSTM only" in table


# --- language_model --------------------------------------------------------------------


def test_language_model_quick(tmp_path):
    """Every system and K on the same text, model size and recipe, stopped at its first
    evaluation past the budget; the three tfrnn unrolls learn the same function (same
    seed and weights: equal bpc at equal steps); PyTorch runs without TensorFlow."""
    from experiments import language_model as lm
    from tfrnn.tasks.language_model import models

    run_module("experiments.language_model", "--quick", f"--output={tmp_path}")
    records = json.loads((tmp_path / "language_model-quick.json").read_text())
    assert [(r["part"], r["system"], r["bptt"]) for r in records] == [
        *(("systems", s, 25) for s in lm.SYSTEMS), ("bptt sweep", "tfrnn_dynamic", 10),
        ("bptt sweep", "tfrnn_dynamic", 50),
    ]  # fmt: skip
    ran = [r for r in records if r["status"] != "skipped"]
    assert {r["text"]["sha256"] for r in ran} == {ran[0]["text"]["sha256"]}
    for r in ran:
        assert r["status"] == "ok", r
        assert_environment(r)
        assert r["recipe"]["units"] == 32 and r["threads"]["intra_op"] == 1
        assert r["parameters"] == ran[0]["parameters"] + 4 * 32 * (r["system"] == "torch")
        assert r["eval_every_steps"] == round(500 / r["bptt"])
        *before, last = [e["train_seconds"] for e in r["evaluations"]]
        assert last >= r["seconds"] > max(before) and r["last_train_seconds"] == last
        assert all(e["test_bpc"] > 0 for e in r["evaluations"])
        assert min(r["best_test_bpc"], r["test_bpc_at_budget"]) > 0
        assert r["tensorflow_loaded"] == (r["system"] != "torch")
    if records[4]["status"] == "skipped":  # torch is not installed
        assert "PyTorch is not installed" in records[4]["note"]
    first = {r["system"]: r["evaluations"][0] for r in ran[:3]}
    assert {e["step"] for e in first.values()} == {first["tfrnn_dynamic"]["step"]}
    bpc = [e["test_bpc"] for e in first.values()]
    assert bpc == pytest.approx([bpc[0]] * 3, rel=1e-4)
    markdown = (tmp_path / "language_model-quick.md").read_text()
    assert "**Is tfrnn's bpc at least as good as Keras's and PyTorch's" in markdown
    assert "**Which K is best in a fixed time?** K=" in markdown
    assert "| tfrnn_static | 25 | ok |" in markdown
    assert_png(tmp_path / "language_model-quick.png")
    assert lm.EMBEDDING == models.EMBEDDING


def test_language_model_bpc_at_the_budget():
    from experiments import language_model as lm

    evaluations = [dict(step=s, train_seconds=t, test_bpc=b, epoch=s / 10)
                   for s, t, b in ((10, 4.0, 3.0), (20, 8.0, 2.0), (30, 12.0, 2.5))]  # fmt: skip
    values = lm.at_budget({"seconds": 10.0, "evaluations": evaluations})
    assert values == dict(best_test_bpc=2.0, test_bpc_at_budget=2.25, last_train_seconds=12.0,
                          epochs=3.0)  # fmt: skip
    assert lm.at_budget({"seconds": 2.0, "evaluations": evaluations})["test_bpc_at_budget"] == 3.0
    assert lm.at_budget({"seconds": 20.0, "evaluations": evaluations})["test_bpc_at_budget"] is None


# --- seeds ---------------------------------------------------------------------------


def test_seeds_quick(tmp_path):
    """The tutorials' recipes train for the quick epoch on tfrnn (the Adadelta/columns one, and
    the softmax-twice one) and in PyTorch where it is installed; a table per recipe by epoch
    beside the tutorial's printed figures, and the plot."""
    from experiments import seeds

    recipes = ["torch_lstm_columns", "tf1_dynamic_lstm"]
    s = harness.settings(seeds, True, {"recipes": recipes})
    seeds.run(s, tmp_path, quick=True, log=lambda line: None)
    records = json.loads((tmp_path / "seeds-quick.json").read_text())
    ran = [(r["recipe"], r["system"]) for r in records]
    assert ran == [(recipes[0], "tfrnn"), (recipes[0], "torch"), (recipes[1], "tfrnn")]
    for r in records:
        if r["status"] == "skipped":  # PyTorch is not installed
            assert r["system"] == "torch" and "PyTorch is not installed" in r["note"]
            continue
        assert r["status"] == "ok", r["note"]
        assert [e["epoch"] for e in r["evaluations"]] == [1.0]
        steps = {recipes[0]: 512 // 64, recipes[1]: 512 // 50}  # batches 64 and 50
        assert r["evaluations"][0]["step"] == steps[r["recipe"]]
        assert 0.0 <= r["final_test_accuracy"] <= 1.0
        assert len(r["load_average_before"]) == 3 and len(r["load_average_after"]) == 3
    markdown = (tmp_path / "seeds-quick.md").read_text()
    assert "| epoch | tutorial | tfrnn seed 0 |" in markdown
    assert "| 1 | 0.5781 |" in markdown  # the tutorial's first epoch beside tfrnn's
    assert "**Last evaluation**: tutorial 0.9807; tfrnn " in markdown
    assert "## tf1_dynamic_lstm" in markdown and "## torch_rnn_rows" not in markdown
    assert_png(tmp_path / "seeds-quick.png")


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_seeds_torch_weights_give_torchs_function(cell):
    """`set_torch_weights`: a tfrnn classifier with an nn.LSTM's (nn.RNN's) weights computes
    what PyTorch computes (its gates, its two biases, no forget bias)."""
    torch = pytest.importorskip("torch")
    from experiments import seeds
    from tfrnn.tasks.classify import models

    torch.manual_seed(0)
    layer = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cell](3, 8, num_layers=2, batch_first=True)
    dense = torch.nn.Linear(8, 10)
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(dense(layer(torch.as_tensor(x))[0][:, -1]), -1).numpy()
    model = models.build_classifier("dynamic", cell, 8, 2, 10, 5, 3)
    weights = {name: p.detach().numpy() for name, p in layer.named_parameters()}
    for i, one in enumerate(model.get_layer("rnn").cell.cells):
        seeds.set_torch_weights(one, *(weights[f"{w}_l{i}"] for w in
                                       ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))  # fmt: skip
    model.get_layer("classes").set_weights([dense.weight.detach().numpy().T, dense.bias.detach().numpy()])
    np.testing.assert_allclose(model(x), expected, atol=1e-5)


def test_seeds_softmax_twice_is_cross_entropy_of_the_probabilities():
    """The TF1 dynamic_rnn tutorial's loss: softmax_cross_entropy_with_logits(logits=softmax(z)),
    -log(exp(p_y) / sum(exp(p))), against numpy; the other recipes' is -log(p_y)."""
    from experiments import seeds
    from tfrnn.tasks.classify import config as config_lib

    config = config_lib.Config(units=4, train_examples=64, test_examples=8, batch_size=8)
    for recipe, expected in (("tf1_dynamic_lstm", "twice"), ("tf1_static_lstm", "once")):
        task = seeds.recipe_task(seeds.RECIPES[recipe], 0)(config)
        task.load_data()
        model = task.build_model()
        indices = np.arange(8, dtype=np.int32)
        loss, sums = task.loss(model, indices)
        p = np.asarray(model(task.data.x_train[:8])).astype(np.float64)
        y = task.data.y_train[:8]
        if expected == "twice":
            reference = -(p[np.arange(8), y] - np.log(np.exp(p).sum(-1)))
            assert reference.min() > np.log(10) - 1  # probabilities as logits: a loss near log 10
        else:
            reference = -np.log(p[np.arange(8), y])
        np.testing.assert_allclose(float(loss), reference.sum(), rtol=1e-5)
        assert float(sums["accuracy"]) == np.sum(p.argmax(-1) == y)


def test_seeds_tf1_initialisation_is_the_tutorials():
    """tf1: BasicLSTMCell's glorot-uniform over its one [F + H, 4H] kernel, zero bias; the
    output layer as the tutorial's variables (random_normal; truncated_normal(0.1) and 0.1)."""
    from experiments import seeds
    from tfrnn.tasks.classify import models

    limit = np.sqrt(6 / (28 + 100 + 400))  # glorot over [28 + 100, 400]
    for recipe, dense_std in (("tf1_static_lstm", 1.0), ("tf1_dynamic_lstm", 0.1)):
        model = models.build_classifier("dynamic", "lstm", 100)
        seeds.initialize(model, seeds.RECIPES[recipe], seed=0)
        cell = model.get_layer("rnn").cell
        for weights in (cell.kernel, cell.recurrent_kernel):
            assert 0.99 * limit < np.abs(weights.numpy()).max() <= limit
        assert not np.any(cell.bias.numpy()) and cell.forget_bias == 1.0
        kernel, bias = (w.numpy() for w in model.get_layer("classes").weights)
        if dense_std == 1.0:
            assert 0.9 < kernel.std() < 1.1 and bias.std() > 0.3
        else:
            assert np.abs(kernel).max() <= 0.2 and 0.07 < kernel.std() < 0.1
            np.testing.assert_array_equal(bias, np.full(10, 0.1, np.float32))
