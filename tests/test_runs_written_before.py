"""A run directory written by main at 4669887, before the application moved
into `tfrnn/training` and `tfrnn/tasks`, still predicts and resumes.

tests/data/run-4669887 is what this command wrote then (LSTM-8, one epoch of
1,024 MNIST rows; checkpoints at steps 4 and 8, export, model.keras, report):

    python -m tfrnn.train --units=8 --train_examples=1024 --test_examples=500 \
        --batch_size=128 --eval_every_steps=4 --checkpoint_every_steps=4 \
        --max_epochs=1 --target_accuracy=0.99 --model_dir=/tmp/oldrun1

and run-4669887-resumed-to-2-epochs.{npz,json} the weights and test
accuracies the same command reached then with --max_epochs=2 (its own
directory, never interrupted).
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfrnn.tasks.classify import config as config_lib
from tfrnn.tasks.classify import export, inference
from tfrnn.training import loop

DATA = pathlib.Path(__file__).parent / "data"
OLD_RUN = DATA / "run-4669887"
FLAGS = dict(units=8, train_examples=1024, test_examples=500, batch_size=128,
             eval_every_steps=4, checkpoint_every_steps=4, target_accuracy=0.99)  # fmt: skip


@pytest.fixture
def old_run(tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(OLD_RUN, copy)
    return copy


def test_an_old_run_predicts_what_it_reported(old_run):
    evaluation = inference.evaluate_export(old_run)
    assert evaluation.format == "saved_model"
    assert (evaluation.examples, evaluation.accuracy) == (500, 0.198)
    assert evaluation.reported["test_accuracy"] == evaluation.accuracy
    keras_evaluation = inference.evaluate_export(old_run, format="keras")
    np.testing.assert_allclose(
        keras_evaluation.probabilities, evaluation.probabilities, atol=1e-5
    )
    steps = inference.steps(old_run, examples=2, log=lambda line: None)
    assert steps.checkpoint.endswith("ckpt-8") and steps.probabilities.shape == (2, 28, 10)


def test_an_old_run_resumes_to_the_weights_of_an_uninterrupted_one(old_run):
    lines = []
    config = config_lib.Config(**FLAGS, max_epochs=2, model_dir=str(old_run))
    report = loop.train(config, log=lines.append)
    assert f"resumed from {old_run}/checkpoints/ckpt-8: epoch 2, step 0/8" in lines
    expected = json.loads((DATA / "run-4669887-resumed-to-2-epochs.json").read_text())
    accuracies = [e["test_accuracy"] for e in report["evaluations"]]
    np.testing.assert_allclose(accuracies, expected["test_accuracy"], atol=0.0041)  # 2 of 500
    reader = tf.train.load_checkpoint(str(old_run / "checkpoints" / "ckpt-16"))
    weights = np.load(DATA / "run-4669887-resumed-to-2-epochs.npz")
    assert len(weights.files) == 5
    for name in weights.files:  # model.I..ATTRIBUTES.VARIABLE_VALUE
        key = f"model/{name.split('.')[1]}/.ATTRIBUTES/VARIABLE_VALUE"
        np.testing.assert_allclose(reader.get_tensor(key), weights[name], rtol=1e-3, atol=1e-4)


def test_a_resumed_old_run_writes_the_same_report_fields_and_export_signatures(old_run):
    old_report = json.loads((OLD_RUN / "report.json").read_text())
    old_module = export.load(OLD_RUN / "export")
    config = config_lib.Config(**FLAGS, max_epochs=2, model_dir=str(old_run))
    report = loop.train(config, log=lambda line: None)
    assert report.keys() == old_report.keys()
    assert report["timing"].keys() == old_report["timing"].keys()
    assert report["export"].keys() == old_report["export"].keys()
    # fields added since: the task (issue 20), the wait for workers (issue 21), the
    # recurrence's kernel (issue 22), the pixels' scale (issue 24)
    added = {"task", "worker_timeout", "kernel", "normalize"}
    assert report["run"].keys() - old_report["run"].keys() == added
    assert report["run"]["kernel"] == "auto" and report["kernel"] == old_report["kernel"]
    assert report["run"]["normalize"] == "unit"
    assert old_report["run"].keys() <= report["run"].keys()
    new_module = export.load(old_run / "export")
    assert new_module.meta == {**old_module.meta, "normalize": "unit"}
    assert set(new_module.signatures) == set(old_module.signatures) == {
        "serving_default", "classify_sequences"}  # fmt: skip
    for name in old_module.signatures:
        old, new = old_module.signatures[name], new_module.signatures[name]
        assert new.structured_input_signature == old.structured_input_signature, name
        assert new.structured_outputs.keys() == old.structured_outputs.keys(), name
