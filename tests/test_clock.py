"""tfrnn.training.clock: the evaluation schedule, records and target, by hand; no TensorFlow."""

import os
import pathlib
import subprocess
import sys

import pytest

from tfrnn.training.clock import Clock, Target, target_fields

ACCURACY = Target("test_accuracy", 0.9)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_clock_configs_and_run_dir_load_no_tensorflow():
    code = (
        "import sys\n"
        "import tfrnn.training.clock, tfrnn.training.config, tfrnn.training.run_dir\n"
        "import tfrnn.training.errors, tfrnn.training.cli, tfrnn.tasks.classify.config\n"
        "print(sorted({'tensorflow', 'keras', 'numpy'} & set(sys.modules)))\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert printed.strip() == "[]"


def test_schedule_records_and_result():
    lines = []
    clock = Clock(target=ACCURACY, eval_every_steps=3, steps_per_epoch=4, log=lines.append)
    clock.begin()
    due = [clock.stepped(seconds) for seconds in (5.0, 1.0, 2.0, 3.0)]
    assert due == [False, False, True, True]  # step 3 (every 3), step 4 (epoch end)
    assert not clock.evaluated({"test_accuracy": 0.5}, 0.25)
    assert clock.stepped(4.0) is False
    assert clock.evaluated({"test_accuracy": 0.95}, 0.5)  # at step 5: reached
    assert [(e["step"], e["epoch"], e["step_seconds"]) for e in clock.evaluations] == [
        (4, 1.0, 11.0),
        (5, 1.25, 15.0),
    ]
    assert lines[-1].startswith("evaluation at step 5 (epoch 1.25): test accuracy 0.9500")
    result = clock.result(batch_size=10)
    assert result["first_step_seconds"] == 5.0
    assert result["median_step_ms"] == 2500.0  # median of 1, 2, 3, 4 s
    assert result["examples_per_second"] == 4.0
    assert result["steps_timed"] == 4 and result["steps"] == 5
    assert result["step_seconds"] == 15.0 and result["eval_seconds"] == 0.75
    assert result["target_reached"] and result["steps_to_target"] == 5
    assert result["epochs_to_target"] == 1.25


def test_state_resumes_records_and_sums():
    clock = Clock(target=ACCURACY, eval_every_steps=2, steps_per_epoch=10, log=len)
    clock.begin()
    clock.stepped(1.0)
    clock.stepped(2.0)
    clock.evaluated({"test_accuracy": 0.5}, 0.5)
    state = clock.state()
    resumed = Clock(ACCURACY, 2, 10, log=len, state=state)
    assert resumed.step == 2 and resumed.evaluations == clock.evaluations
    assert resumed.step_sum == 3.0 and resumed.eval_seconds == 0.5
    assert not resumed.reached
    assert Clock(Target("test_accuracy", 0.4), 2, 10, log=len, state=state).reached  # lower
    resumed.begin()
    assert resumed.seconds() >= state["wall_seconds"]  # the wall clock goes on


@pytest.mark.parametrize("target, step", [(0.5, 2), (0.7, 3), (0.9, None)])
def test_target_fields_take_the_first_evaluation_at_the_target(target, step):
    evaluations = [
        dict(step=s, epoch=s / 4, seconds=s, train_seconds=s, step_seconds=s,
             test_accuracy=a)
        for s, a in ((1, 0.4), (2, 0.6), (3, 0.8), (4, 0.7))
    ]
    fields = target_fields(evaluations, Target("test_accuracy", target))
    assert fields["target_reached"] is (step is not None)
    assert fields["seconds_to_target"] == step
    assert fields["epochs_to_target"] == (step / 4 if step else None)
