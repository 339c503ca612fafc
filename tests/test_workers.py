"""Multi-worker faults: two `python -m tfrnn.train` workers on localhost
(`TF_CONFIG`, one shared --model_dir). An interrupt of either worker, or a
lost worker, then a rerun of both, ends with the weights of a run never
interrupted; a worker says it waits for its partner, and if that one never
starts, gives one line within the deadline, and so does SIGTERM while waiting."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from test_distributed import ENV
from test_distributed import ROOT
from test_distributed import final_weights

USER_ENV = {k: v for k, v in ENV.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
# The line of a worker as it starts waiting for the other.
WAITING = (r"worker (\d) waiting for worker (\d) \(127\.0\.0\.1:\d+\) of TF_CONFIG: "
           r"up to --worker_timeout=(\d+) s")  # fmt: skip
FLAGS = [
    "--strategy=multi_worker", "--units=32", "--train_examples=6400",
    "--test_examples=256", "--batch_size=128", "--max_epochs=3", "--log_every_steps=5",
    "--eval_every_steps=1000", "--checkpoint_every_steps=30", "--worker_timeout=120",
]  # fmt: skip


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(model_dir, workers=2, *flags, flags_of=None, env=USER_ENV):
    """Starts `workers` of a cluster of two on localhost (worker 0 first);
    `flags_of[i]`: more flags for worker i."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(workers):
        more = (flags_of or {}).get(index, [])
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfrnn.train", *FLAGS, *flags, *more, f"--model_dir={model_dir}"],
            cwd=ROOT, env={**env, "TF_CONFIG": json.dumps(tf_config)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))  # fmt: skip
    return processes


def wait_for_line(process, text):
    """Reads `process`'s output up to the line containing `text`; returns it all."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return "".join(lines)
    raise AssertionError(f"no {text!r} in:\n{''.join(lines)[-3000:]}")


def finish(processes, timeout=300):
    """`(return code, output)` of each process."""
    return [(p.wait(timeout), p.stdout.read()) for p in processes]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("uninterrupted")
    for code, output in finish(start(model_dir)):
        assert code == 0, output[-3000:]
    return final_weights(model_dir / "checkpoints")


def assert_resumes_to(model_dir, expected):
    """Reruns both workers on `model_dir`: both finish with `expected` weights."""
    results = finish(start(model_dir))
    for code, output in results:
        assert code == 0, output[-3000:]
        assert "resumed from" in output
    for directory in ("checkpoints", "worker-1/checkpoints"):
        for got, want in zip(final_weights(model_dir / directory), expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "index, number", [(1, signal.SIGINT), (0, signal.SIGTERM)], ids=["worker1-SIGINT", "chief-SIGTERM"]
)
def test_an_interrupt_of_either_worker_stops_both_at_one_step(tmp_path, uninterrupted, index, number):
    processes = start(tmp_path)
    wait_for_line(processes[index], "epoch 1 step 20/50")
    processes[index].send_signal(number)
    results = finish(processes)
    last_lines = [output.strip().splitlines()[-1] for _, output in results]
    assert last_lines[0] == last_lines[1]  # the same step on both
    assert last_lines[0].startswith("interrupted at epoch ")  # the watcher polls each second
    assert last_lines[0].endswith("checkpoint saved; rerun every worker's command to resume")
    assert results[index][0] == 128 + number
    assert not any("Traceback" in output for _, output in results)
    steps = [sorted(os.listdir(tmp_path / d)) for d in ("checkpoints", "worker-1/checkpoints")]
    assert steps[0] == steps[1]
    assert_resumes_to(tmp_path, uninterrupted)


def test_a_lost_worker_gives_one_line_and_a_checkpoint(tmp_path, uninterrupted):
    processes = start(tmp_path)
    wait_for_line(processes[0], "epoch 2 step 20/50")
    processes[1].kill()
    code, output = finish(processes[:1])[0]
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: lost worker 1 of the cluster (")
    assert f"checkpoint saved at epoch 2 step " in last and str(tmp_path / "checkpoints") in last
    assert "Traceback" not in output
    processes[1].wait()
    # The chief saved after its last step; worker 1 has only an older one:
    # the rerun takes the chief's.
    assert_resumes_to(tmp_path, uninterrupted)


@pytest.mark.parametrize("number", [None, signal.SIGTERM, signal.SIGINT], ids=["deadline", "SIGTERM", "SIGINT"])
def test_a_partner_that_never_starts_gives_one_line(tmp_path, number):
    # Without PYTHONUNBUFFERED, as a user runs it: the waiting line is out
    # before TensorFlow blocks (the watchdog's SIGKILL would lose it).
    env = {k: v for k, v in USER_ENV.items() if k != "PYTHONUNBUFFERED"}
    (process,) = start(tmp_path, 1, "--worker_timeout=20", env=env)
    started = time.monotonic()
    said = ""
    if number is not None:
        said = wait_for_line(process, "waiting for worker 1")
        process.send_signal(number)
    code, output = finish([process], timeout=60)[0]
    output = said + output
    waiting, *lines = output.strip().splitlines()
    assert re.fullmatch(WAITING, waiting).groups() == ("0", "1", "20")
    if number is None:
        assert lines == [
            "error: worker 0 waited 20 s for worker 1 (127.0.0.1:"
            + lines[0].split("127.0.0.1:")[1].split(")")[0]
            + ") of TF_CONFIG, which did not start: start every worker's command (within "
            "--worker_timeout of each other), or check TF_CONFIG's addresses"
        ]
        assert 20 <= time.monotonic() - started < 45
    else:
        assert len(lines) == 1 and lines[0].startswith("worker 0 interrupted while waiting")
        assert time.monotonic() - started < 20
    # SIGINT ends it as Python's default (130 in a shell); else the watchdog's SIGKILL (137)
    assert code == (-signal.SIGINT if number == signal.SIGINT else -signal.SIGKILL)
    assert not (tmp_path / "checkpoints").exists()


def test_workers_started_with_different_flags_are_refused_alike(tmp_path):
    # Per-worker flags (threads, the log's pace) may differ; --units may not.
    results = finish(start(tmp_path, 2, flags_of={1: ["--units=64", "--log_every_steps=7"]}))
    for index, (code, output) in enumerate(results):
        assert code == 1
        waiting, *lines = output.strip().splitlines()
        assert re.fullmatch(WAITING, waiting).groups() == (str(index), str(1 - index), "120")
        assert lines == [
            "error: the workers were started with different flags (--units): give every "
            "worker the same flags (only --model_dir, --intra_op_threads, --inter_op_threads, "
            "--worker_timeout, --log_every_steps may differ)"
        ]
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("tf_config, strategy, message", [
    ("{cluster", "multi_worker", "TF_CONFIG cannot be used (JSONDecodeError: Expecting property"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", '
     '"index": 5}}', "multi_worker", "TF_CONFIG cannot be used (ValueError: its task worker 5 "
     "is not in its cluster)"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", '
     '"index": 0}}', "default", "TF_CONFIG lists a cluster (worker 1 (127.0.0.1:2) besides "
     "worker 0) but --strategy=default: add --strategy=multi_worker, or unset TF_CONFIG"),
])  # fmt: skip
def test_a_tf_config_that_cannot_be_used_is_one_line(tmp_path, tf_config, strategy, message):
    process = subprocess.run(
        [sys.executable, "-m", "tfrnn.train", f"--strategy={strategy}", f"--model_dir={tmp_path}/r"],
        cwd=ROOT, env={**USER_ENV, "TF_CONFIG": tf_config}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [process.stderr.strip()]
    assert process.stderr.startswith("error: " + message)
    assert not (tmp_path / "r").exists()
