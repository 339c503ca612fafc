"""`tfrnn.predict`: accuracy of the export, the two figures, clear errors."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from matplotlib import image as mpimg

from tfrnn import predict
from tfrnn.tasks.classify import figures, inference
from tfrnn.training import checkpoint, run_dir
from tfrnn.tasks.classify import config as config_lib
from tfrnn.training import loop
from tfrnn.training.errors import RunDirError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def train_tiny(directory, mode, name=None, **overrides):
    config = config_lib.Config(
        mode=mode,
        units=16,
        train_examples=512,
        test_examples=128,
        batch_size=64,
        max_epochs=1,
        model_dir=str(directory),
        deterministic=False,
        **overrides,
    )
    lines = []
    loop.train(config, log=lines.append)
    train_tiny.lines[name or mode] = lines
    return pathlib.Path(directory)


train_tiny.lines = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three trained runs: static (which reaches its low target), dynamic,
    and dynamic bidirectional with 2 steps per loop iteration."""
    root = tmp_path_factory.mktemp("predict")
    return {
        "static": train_tiny(root / "static", "static", target_accuracy=0.01),
        "dynamic": train_tiny(root / "dynamic", "dynamic"),
        "bidirectional": train_tiny(
            root / "bidirectional",
            "dynamic",
            name="bidirectional",
            unroll=2,
            bidirectional=True,
        ),
    }


@pytest.fixture(scope="module")
def evaluations(runs):
    return {mode: inference.evaluate_export(path) for mode, path in runs.items()}


def run_main(model_dir, output_dir=None, examples=None, format=None):
    """`predict.main` with its own flag values (absl's global ones stay clean)."""
    flag_values = flags.FlagValues()
    predict.define_flags(flag_values)
    argv = ["predict", f"--model_dir={model_dir}"]
    if output_dir is not None:
        argv.append(f"--output_dir={output_dir}")
    if examples is not None:
        argv.append(f"--examples={examples}")
    if format is not None:
        argv.append(f"--format={format}")
    predict.main(flag_values(argv)[:1], flag_values)


def assert_png(path, min_width=300, min_height=300):
    path = pathlib.Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= min_height, pixels.shape
    assert pixels[..., :3].std() > 0.05, f"{path} is (nearly) blank"
    return pixels


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_accuracy_equals_training_report(runs, evaluations, mode):
    evaluation = evaluations[mode]
    assert evaluation.format == "saved_model"
    assert evaluation.path == str(runs[mode] / "export")
    report = json.loads((runs[mode] / "report.json").read_text())
    assert evaluation.examples == report["test_examples"] == 128
    assert len(evaluation.labels) == len(evaluation.probabilities) == 128
    assert evaluation.accuracy == report["evaluations"][-1]["test_accuracy"]
    assert evaluation.reported == report["evaluations"][-1]
    assert evaluation.meta["mode"] == mode
    np.testing.assert_allclose(evaluation.probabilities.sum(-1), 1.0, atol=1e-5)


def test_cli_static_prints_accuracy_and_writes_both_figures(
    runs, evaluations, tmp_path, capsys
):
    run_main(runs["static"], output_dir=tmp_path)
    printed = capsys.readouterr().out
    accuracy = evaluations["static"].accuracy
    assert f"test accuracy {accuracy:.4f}" in printed
    assert "of 128 test examples of mnist" in printed
    assert "wrote" in printed and "steps.png" in printed
    predictions = assert_png(tmp_path / "predictions.png")
    steps = assert_png(tmp_path / "steps.png")
    assert steps.shape[1] > steps.shape[0]  # four plots side by side
    assert predictions.shape[0] >= 600  # a 4 x 4 grid


def test_cli_dynamic_writes_both_figures_and_defaults_to_model_dir(runs, capsys):
    run_main(runs["dynamic"], examples=9)
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "steps.png" in printed
    assert_png(runs["dynamic"] / "predictions.png")
    assert_png(runs["dynamic"] / "steps.png")


def test_prediction_grid_marks_wrong_predictions(evaluations, tmp_path):
    evaluation = evaluations["static"]
    path = figures.plot_predictions(evaluation, tmp_path / "grid.png", examples=16)
    assert_png(path)
    # The titles come from the same predictions the accuracy counts.
    assert np.array_equal(
        evaluation.predictions, np.argmax(evaluation.probabilities, -1)
    )


@pytest.mark.parametrize("mode", ["static", "dynamic", "bidirectional"])
def test_last_step_is_the_models_prediction(runs, evaluations, tmp_path, mode):
    if mode not in evaluations:
        evaluations[mode] = inference.evaluate_export(runs[mode])
    steps = inference.steps(runs[mode], examples=4)
    path = figures.plot_steps(steps, tmp_path / "steps.png")
    assert_png(path)
    assert steps.probabilities.shape == (4, 28, 10)
    np.testing.assert_allclose(
        steps.probabilities[:, -1], steps.model_probabilities, atol=1e-5
    )
    # The weights restored are the trained ones: the export agrees too.
    np.testing.assert_allclose(
        steps.probabilities[:, -1], evaluations[mode].probabilities[:4], atol=1e-5
    )
    np.testing.assert_array_equal(steps.labels, evaluations[mode].labels[:4])
    np.testing.assert_allclose(steps.probabilities.sum(-1), 1.0, atol=1e-5)
    # The probabilities move as rows are read (not one curve repeated).
    assert np.abs(np.diff(steps.probabilities, axis=1)).max() > 1e-3


@pytest.mark.parametrize("mode", ["static", "bidirectional"])
def test_keras_file_predicts_as_the_saved_model(runs, evaluations, mode):
    """model.keras and the SavedModel: the same probabilities, and the same
    steps (model.keras's weights are the last checkpoint's)."""
    saved = evaluations.get(mode) or inference.evaluate_export(runs[mode])
    from_keras = inference.evaluate_export(runs[mode], format="keras")
    assert from_keras.format == "keras"
    assert from_keras.path == str(runs[mode] / "model.keras")
    np.testing.assert_allclose(from_keras.probabilities, saved.probabilities, atol=1e-5)
    assert from_keras.accuracy == saved.accuracy
    assert from_keras.meta["bidirectional"] == (mode == "bidirectional")
    steps = inference.steps(runs[mode], weights="keras")
    assert steps.checkpoint == str(runs[mode] / "model.keras")
    np.testing.assert_allclose(
        steps.probabilities[:, -1], saved.probabilities[:4], atol=1e-5
    )


def test_auto_format_falls_back_to_the_keras_file(runs, tmp_path, capsys):
    """Without MODEL_DIR/export, `--format=auto` reads model.keras; asked for
    one that is missing, the message names it."""
    copy = tmp_path / "run"
    shutil.copytree(runs["dynamic"], copy, ignore=shutil.ignore_patterns("export"))
    assert inference.resolve_format(copy) == "keras"
    assert inference.resolve_format(runs["dynamic"]) == "saved_model"
    run_main(copy, output_dir=tmp_path / "figures")
    printed = capsys.readouterr().out
    assert f"of 128 test examples of mnist; {copy / 'model.keras'})" in printed
    assert f"weights of {copy / 'model.keras'}" in printed
    assert_png(tmp_path / "figures" / "steps.png")
    with pytest.raises(RunDirError, match=f"no exported model in {copy / 'export'}"):
        inference.evaluate_export(copy, format="saved_model")
    (copy / "model.keras").unlink()
    with pytest.raises(RunDirError, match=f"no {copy / 'model.keras'}; train first"):
        inference.evaluate_export(copy, format="keras")
    in_training = inference.evaluate_export(copy)  # neither yet: its best checkpoint
    assert (in_training.format, in_training.path) == (
        "checkpoint", tf.train.latest_checkpoint(str(copy / "checkpoints")))  # fmt: skip


def test_a_run_saved_before_the_new_flags_reads_as_it_ran(runs, tmp_path):
    """A config.json without unroll, bidirectional, precision and threads (a
    run of an earlier tfrnn) reads as what that run ran, and resumes."""
    from tfrnn.training.run_dir import RunDir

    copy = tmp_path / "run"
    shutil.copytree(runs["dynamic"], copy)
    saved = json.loads((copy / "config.json").read_text())
    new_fields = ("task", "unroll", "bidirectional", "precision", "intra_op_threads",
                  "inter_op_threads")  # fmt: skip
    old = {k: v for k, v in saved.items() if k not in new_fields}
    (copy / "config.json").write_text(json.dumps(old))
    config = run_dir.read_run_config(copy)
    assert (config.unroll, config.bidirectional, config.precision) == (1, False, "float32")
    assert (config.intra_op_threads, config.inter_op_threads) == (0, 0)
    today = config_lib.Config(**{**saved, "intra_op_threads": 1, "inter_op_threads": 2})
    RunDir(copy).check(today)  # resumable: threads may change, the rest matches
    with pytest.raises(ValueError, match="unroll=1 there, 2 now"):
        RunDir(copy).check(config_lib.Config(**{**saved, "unroll": 2}))
    steps = inference.steps(copy, examples=2)  # its checkpoint, its model
    np.testing.assert_allclose(
        steps.probabilities[:, -1], steps.model_probabilities, atol=1e-5
    )


def test_damaged_keras_file_is_named(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs["dynamic"], copy, ignore=shutil.ignore_patterns("export"))
    (copy / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(
        RunDirError, match=f"{copy / 'model.keras'} cannot be read .*delete it"
    ):
        inference.evaluate_export(copy)


def test_steps_use_target_checkpoint_when_present(runs):
    static, dynamic = runs["static"], runs["dynamic"]
    assert f"target 0.01 reached: kept {static / 'target'}" in train_tiny.lines["static"]
    assert (static / "target" / "ckpt.index").exists()
    assert checkpoint.checkpoint_paths(static)[0] == str(static / "target" / "ckpt")
    assert checkpoint.checkpoint_paths(dynamic)[0] == tf.train.latest_checkpoint(
        str(dynamic / "checkpoints")
    )


def test_missing_export_says_train_first(runs, tmp_path):
    (tmp_path / "config.json").write_text((runs["dynamic"] / "config.json").read_text())
    with pytest.raises(RunDirError, match="train first with `python -m tfrnn.train"):
        inference.evaluate_export(tmp_path)
    with pytest.raises(RunDirError, match="does not exist.*train first"):
        inference.evaluate_export(tmp_path / "nowhere")


def test_cli_missing_export_exits_with_the_message(tmp_path):
    """A run that has not exported yet (its config.json only, as in training)."""
    shutil.copy(pathlib.Path(__file__).parent / "data/run-4669887/config.json", tmp_path)
    process = subprocess.run(
        [sys.executable, "-m", "tfrnn.predict", f"--model_dir={tmp_path}"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert process.returncode == 1
    assert f"no exported model in {tmp_path / 'export'}" in process.stderr
    assert f"train first with `python -m tfrnn.train --model_dir={tmp_path}`" in (
        process.stderr
    )
    assert not (tmp_path / "predictions.png").exists()
