"""tf.distribute: MirroredStrategy on two logical CPUs, two workers on localhost."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def final_weights(checkpoint_dir, variables=5, prefixes=("model/",)):
    """The checkpoint's tensors under `prefixes`, by name; `variables` of the
    model (the classifier's: kernel, recurrent kernel, bias, dense kernel and
    bias)."""
    reader = tf.train.load_checkpoint(str(checkpoint_dir))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith(prefixes))
    assert sum(n.startswith("model/") for n in names) == variables
    return [reader.get_tensor(n) for n in names]


@pytest.mark.parametrize("task", ["classify", "language_model"])
def test_mirrored_two_replicas_equals_one_device(tmp_path, task):
    text = []
    if task == "language_model":  # 8 streams of 11 chunks: the state is carried
        rng = np.random.default_rng(0)
        (tmp_path / "text.txt").write_text("".join(rng.choice(list("ab c\n"), 2000)))
        text = [str(tmp_path / "text.txt")]
    for replicas in (1, 2):
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "mirrored_run.py"),
             str(tmp_path / f"r{replicas}"), str(replicas), *text],
            env=ENV, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    # The language model: embedding, LSTM kernels and bias, dense, and the
    # carried state [h, c] of all 8 streams.
    shapes = (5, ("model/",)) if task == "classify" else (6, ("model/", "carried_state/"))
    one = final_weights(tmp_path / "r1" / "checkpoints", *shapes)
    two = final_weights(tmp_path / "r2" / "checkpoints", *shapes)
    # The same global batches and an averaged gradient: equal up to float
    # summation order.
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert np.abs(one[-1]).max() > 0.01  # the carried state is not zeros
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert report["replicas"] == 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_two_processes_end_with_equal_weights(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tfrnn.train",
                    "--strategy=multi_worker",
                    "--units=16",
                    "--train_examples=512",
                    "--test_examples=128",
                    "--batch_size=64",
                    "--max_epochs=1",
                    "--deterministic=false",
                    f"--model_dir={tmp_path / f'w{index}'}",
                ],
                cwd=ROOT,
                env={**ENV, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output[-3000:]
    chief = final_weights(tmp_path / "w0" / "checkpoints")
    other = final_weights(tmp_path / "w1" / "worker-1" / "checkpoints")
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    report = json.loads((tmp_path / "w0" / "report.json").read_text())
    assert report["replicas"] == 2
    assert not (tmp_path / "w1" / "report.json").exists()  # only the chief reports
    # Worker 1 writes only into its own directory.
    assert sorted(p.name for p in (tmp_path / "w1").iterdir()) == ["worker-1"]
