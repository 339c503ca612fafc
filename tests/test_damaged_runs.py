"""Damaged run directories: one line naming the file and what to do, or a
fallback to the previous checkpoint with a warning; never a traceback."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from absl import flags

from tfrnn.tasks.classify import config as config_lib
from tfrnn import predict
from tfrnn.tasks.classify import inference
from tfrnn.training import loop
from tfrnn.training.errors import RunDirError

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(
    mode="dynamic",
    units=4,
    train_examples=128,
    test_examples=64,
    batch_size=32,
    max_epochs=1,
    checkpoint_every_steps=2,  # ckpt-2 and ckpt-4 kept
    deterministic=False,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("trained")
    loop.train(config_lib.Config(model_dir=str(model_dir), **TINY), log=lambda _: 0)
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("*.index")) == [
        "ckpt-2.index",
        "ckpt-4.index",
    ]
    return model_dir


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run, to damage."""
    return pathlib.Path(shutil.copytree(trained, tmp_path / "run"))


def garble(path):
    pathlib.Path(path).write_bytes(b"garbage" * 10)


def train_again(model_dir, **changes):
    lines = []
    config = config_lib.Config(model_dir=str(model_dir), **{**TINY, **changes})
    report = loop.train(config, log=lines.append)
    return report, lines


def run_predict(model_dir, tmp_path):
    """`predict.main` in-process: returns its exit message (None: no exit)."""
    flag_values = flags.FlagValues()
    predict.define_flags(flag_values)
    argv = flag_values(["predict", f"--model_dir={model_dir}", f"--output_dir={tmp_path}"])
    try:
        predict.main(argv[:1], flag_values)
    except SystemExit as exit:
        return str(exit.code)
    return None


def test_damaged_latest_checkpoint_falls_back_with_a_warning(run):
    data_file = run / "checkpoints" / "ckpt-4.data-00000-of-00001"
    garble(data_file)
    _, lines = train_again(run, max_epochs=2)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        f"warning: {data_file} cannot be read (IndexError: Read less bytes than "
        "requested); using an older one"
    ]
    assert any(line.startswith("resumed from") and "ckpt-2:" in line for line in lines)
    assert (run / "report.json").exists()


def test_predict_falls_back_past_a_damaged_checkpoint(run):
    garble(run / "checkpoints" / "ckpt-4.data-00000-of-00001")
    lines = []
    _, path = inference.rebuild_model(run, 28, 28, 10, log=lines.append)
    assert path.endswith("ckpt-2") and len(lines) == 1
    assert "ckpt-4.data-00000-of-00001 cannot be read" in lines[0]


def test_no_readable_checkpoint_names_the_files(run):
    for name in ("ckpt-2.index", "ckpt-4.data-00000-of-00001"):
        garble(run / "checkpoints" / name)
    with pytest.raises(RunDirError) as error:
        train_again(run)
    message = str(error.value)
    assert message.startswith("no checkpoint can be read (")
    assert str(run / "checkpoints" / "ckpt-2.index") in message
    assert str(run / "checkpoints" / "ckpt-4.data-00000-of-00001") in message
    assert message.endswith(f"delete {run} to start over, or use another --model_dir")


def test_cli_no_readable_checkpoint_is_one_line(run):
    for name in ("ckpt-2.index", "ckpt-4.index"):
        garble(run / "checkpoints" / name)
    flags_ = [f"--{k}={v}" for k, v in TINY.items()] + [f"--model_dir={run}"]
    process = subprocess.run(
        [sys.executable, "-m", "tfrnn.train", *flags_],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 1
    lines = (process.stdout + process.stderr).strip().splitlines()
    assert len(lines) == 1, lines  # no warnings, no TensorFlow lines, no traceback
    assert lines[0].startswith("error: no checkpoint can be read (")


def test_damaged_config_is_named_by_train_and_predict(run, tmp_path):
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match=f"{run / 'config.json'} cannot be read"):
        train_again(run)
    message = run_predict(run, tmp_path)
    assert message.startswith(f"error: {run / 'config.json'} cannot be read (")
    assert message.endswith(
        f"delete {run} and train again with `python -m tfrnn.train "
        f"--model_dir={run}` and the run's flags"
    )


def test_damaged_saved_model_is_named_by_predict(run, tmp_path):
    garble(run / "export" / "saved_model.pb")
    message = run_predict(run, tmp_path)
    assert message.startswith(f"error: {run / 'export' / 'saved_model.pb'} cannot be read")
    assert message.endswith(
        f"delete {run / 'export'} and rerun the training command (its flags are in "
        f"{run}/config.json) to export it again"
    )


def test_checkpoints_without_config_are_refused_before_restoring(run):
    (run / "config.json").unlink()
    with pytest.raises(ValueError, match="holds checkpoints but .*config.json is missing"):
        train_again(run, cell="gru")  # would fail restoring with a dtype error
    assert not (run / "config.json").exists()


def test_a_damaged_report_of_a_finished_run_is_written_again(trained, run):
    garble(run / "report.json")
    _, lines = train_again(run)
    assert not [line for line in lines if "nothing to do" in line], lines
    assert lines[0] == (
        f"warning: {run / 'report.json'} cannot be read (Expecting value: line 1 column 1 "
        "(char 0)): exporting the model and reporting again"
    )
    written, before = (json.loads((path / "report.json").read_text()) for path in (run, trained))
    assert written["evaluations"] == before["evaluations"]
    assert written["target_reached"] is before["target_reached"] is False
    assert (run / "export" / "saved_model.pb").exists()


def test_predict_falls_back_to_model_keras_when_no_checkpoint_can_be_read(
    run, tmp_path, capsys
):
    damaged = [run / "checkpoints" / "ckpt-4.index", run / "checkpoints" / "ckpt-2.index"]
    for path in damaged:
        garble(path)
    assert run_predict(run, tmp_path) is None
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"warning: no checkpoint can be read ({damaged[0]}, {damaged[1]}); using "
        f"{run / 'model.keras'}, the model written when training ended"
    ]
    assert out.splitlines()[-1] == (
        f"wrote {tmp_path / 'steps.png'} (weights of {run / 'model.keras'})"
    )


def test_predict_with_no_readable_checkpoint_nor_model_keras_says_retrain(run, tmp_path):
    for name in ("checkpoints/ckpt-4.index", "checkpoints/ckpt-2.index", "model.keras"):
        garble(run / name)
    message = run_predict(run, tmp_path)
    assert message.startswith("error: no checkpoint can be read (")
    assert message.endswith(f"delete {run} and train again with `python -m tfrnn.train "
                            f"--model_dir={run}` and the run's flags")  # fmt: skip
