"""A trained run read back: its export on the test set, its model step by step.

A run leaves its model twice: the SavedModel MODEL_DIR/export (what serving
reads; no tfrnn needed to load it) and the Keras file MODEL_DIR/model.keras
(`keras.saving.load_model`, with tfrnn imported). `FORMATS` names them;
"auto" takes the SavedModel when it is there, else model.keras.

Library functions; each raises a `tfrnn.training.errors.TfrnnError` (`RunDirError`,
`DataError`) naming the file and what to do. `python -m tfrnn.predict` is the
command line over them (`Task.predict`); `figures` draws what they return.
"""

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

import tfrnn
from tfrnn.tasks.classify import data, evaluation, export, models
from tfrnn.tasks.classify.config import Config
from tfrnn.training import checkpoint
from tfrnn.training.errors import NoReadableCheckpoint, RunDirError, one_line
from tfrnn.training.models import recurrent_layers
from tfrnn.training import run_dir
from tfrnn.training.run_dir import RETRAIN, TRAIN_FIRST, RunDir, read_json

FORMATS = ("auto", "saved_model", "keras")


class Evaluation(NamedTuple):
    """The exported model's predictions on the run's test set."""

    format: str  # "saved_model", "keras" or "checkpoint": the file read
    path: str  # MODEL_DIR/export, MODEL_DIR/model.keras or a checkpoint
    accuracy: float
    examples: int  # number of test examples classified
    correct: int
    images: np.ndarray  # uint8 [N, H, W] (or [N, H, W, C]), the test images used
    labels: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, num_classes]
    meta: dict  # tfrnn.json of the export (for model.keras: the same, from config.json)
    reported: dict | None  # last evaluation in report.json, if any

    @property
    def predictions(self):
        return np.argmax(self.probabilities, -1)


class Steps(NamedTuple):
    """Class probabilities after each step, for a few test examples."""

    probabilities: np.ndarray  # float32 [B, T, num_classes]
    model_probabilities: np.ndarray  # float32 [B, num_classes], model(x)
    images: np.ndarray  # uint8 [B, H, W...]
    labels: np.ndarray  # int64 [B]
    checkpoint: str  # the weights used: a checkpoint, or model.keras
    config: Config  # the run's


# --- reading a run -------------------------------------------------------------


def load_export(model_dir):
    """The exported module of the run in `model_dir`, with its `.meta`."""
    run = run_dir.existing(model_dir)
    directory = run.export
    if not (directory / "saved_model.pb").exists():
        raise RunDirError(
            f"no exported model in {directory}; "
            + TRAIN_FIRST.format(model_dir=run)
            + " (it exports to MODEL_DIR/export and MODEL_DIR/model.keras when "
            "training ends)"
        )
    return export.load(
        directory,
        f"delete {directory} and rerun the training command (its flags are in "
        f"{run}/config.json) to export it again",
    )


def load_keras(model_dir):
    """The Keras model of MODEL_DIR/model.keras."""
    run = run_dir.existing(model_dir)
    path = run.keras_model
    if not path.exists():
        raise RunDirError(
            f"no {path}; " + TRAIN_FIRST.format(model_dir=run)
            + " (it writes MODEL_DIR/model.keras when training ends)"
        )
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 - a damaged zip raises anything
        raise RunDirError(
            f"{path} cannot be read ({one_line(error)}): delete it "
            f"and rerun the training command (its flags are in "
            f"{run}/config.json) to write it again"
        ) from None


def resolve_format(model_dir, format="auto"):
    """"saved_model", "keras" or "checkpoint": `format`, or for "auto" the
    SavedModel when MODEL_DIR/export holds one, else model.keras when it is
    there, else (a run still training) its best checkpoint."""
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of: {', '.join(FORMATS)}")
    run = run_dir.existing(model_dir)
    if format != "auto":
        return format
    if (run.export / "saved_model.pb").exists():
        return "saved_model"
    if run.keras_model.exists():
        return "keras"
    if (run.checkpoints / "checkpoint").exists() or run.target.with_suffix(".index").exists():
        return "checkpoint"
    return "saved_model"  # (when none is there, its message says so)


def load_test_set(dataset, data_dir=None, test_examples=None):
    """uint8 test images and labels: the first `test_examples` (all when None)."""
    arrays = data.load_arrays(dataset, data_dir)
    count = len(arrays.x_test) if test_examples is None else int(test_examples)
    return arrays.x_test[:count], arrays.y_test[:count], arrays.num_classes


def last_reported(model_dir):
    """The last evaluation recorded in report.json, or None."""
    path = RunDir(model_dir).report
    if not path.exists():
        return None
    evaluations = read_json(path, "delete it or retrain").get("evaluations")
    evaluations = evaluations or []
    return evaluations[-1] if evaluations else None


# --- the exported model on the test set ------------------------------------------


def evaluate_export(model_dir, format="auto", batch_size=1000, log=print):
    """Classifies the run's test set with its SavedModel (`classify_images`)
    or its model.keras, as `format` (one of `FORMATS`) says; "auto" on a run
    still training: the model of its best checkpoint (`rebuild_model`)."""
    format = resolve_format(model_dir, format)
    if format == "saved_model":
        module = load_export(model_dir)
        classify, meta = module.classify_images, module.meta
        path = RunDir(model_dir).export
    config = run_dir.read_run_config(model_dir)
    if format in ("keras", "checkpoint"):
        if format == "keras":
            model, path = load_keras(model_dir), RunDir(model_dir).keras_model
        else:
            x, _, num_classes = load_test_set(config.dataset, config.data_dir, 1)
            shape = data.to_sequences(x, config.sequence, normalize=config.normalize).shape
            model, path = rebuild_model(model_dir, shape[1], shape[2], num_classes, log)
        sequence, normalize = config.sequence, config.normalize

        def classify(images):
            sequences = data.to_sequences(images.numpy(), sequence, normalize=normalize)
            return model(sequences, training=False)

        meta = export.config_meta(config)
    images, labels, _ = load_test_set(
        meta["dataset"], config.data_dir, config.test_examples
    )
    probabilities = evaluation.probabilities(classify, images, batch_size)
    correct = int(np.sum(np.argmax(probabilities, -1) == labels))
    return Evaluation(
        format=format,
        path=str(path),
        accuracy=correct / len(labels),
        examples=len(labels),
        correct=correct,
        images=images,
        labels=labels,
        probabilities=probabilities,
        meta=meta,
        reported=last_reported(model_dir),
    )


# --- the Keras model, step by step ------------------------------------------------


def rebuild_model(model_dir, time_steps, features, num_classes, log=print):
    """The Keras model of config.json with the weights of the first readable
    of `checkpoint.checkpoint_paths` (a warning line for each one that is not).

    Returns `(model, checkpoint path)`.
    """
    config = run_dir.read_run_config(model_dir)
    model = models.classifier_for(config, num_classes, time_steps, features)
    path = checkpoint.restore_first_readable(
        lambda path: checkpoint.restore_model(model, path),
        checkpoint.checkpoint_paths(model_dir),
        log,
        RETRAIN.format(model_dir=model_dir),
    )
    return model, path


def rebuild_model_or_keras(model_dir, time_steps, features, num_classes, log=print):
    """`rebuild_model`'s `(model, checkpoint path)`; when no checkpoint can be
    read, the model of MODEL_DIR/model.keras (written when training ended)
    and its path, after one warning line naming the checkpoints. Without a
    readable model.keras, `rebuild_model`'s error."""
    try:
        return rebuild_model(model_dir, time_steps, features, num_classes, log)
    except NoReadableCheckpoint as error:
        try:
            model = load_keras(model_dir)
        except RunDirError:
            raise error from None
        path = RunDir(model_dir).keras_model
        log(
            f"warning: no checkpoint can be read ({', '.join(error.files)}); "
            f"using {path}, the model written when training ended"
        )
        return model, str(path)


def step_probabilities(model, sequences):
    """Class probabilities after every step: `[batch, steps, num_classes]`.

    The model's recurrence (its "rnn" layer) runs again through `tfrnn.RNN`
    layers that share its cells and unroll but return every step's output;
    the model's "classes" layer turns each output into probabilities. A
    bidirectional model's step t joins both directions after t steps each
    (forward: the first t, backward: the last t), so that the last step is
    the model's own prediction. For `cnn_rnn` models the steps are the rows
    of the convolution's feature map.
    """
    recurrence = model.get_layer("rnn")
    x = tf.convert_to_tensor(sequences, tf.float32)
    if recurrence.input is not model.inputs[0]:  # cnn_rnn: the recurrence's inputs
        x = keras.Model(model.inputs, recurrence.input)(x, training=False)
    outputs = [
        tfrnn.RNN(
            layer.cell,
            unroll=layer.unroll,
            go_backwards=layer.go_backwards,
            return_sequences=True,
            dtype=layer.dtype_policy,
        )(x, training=False)
        for layer in recurrent_layers(model)
    ]
    outputs = tf.concat(outputs, axis=-1)  # Bidirectional's merge_mode="concat"
    return np.asarray(model.get_layer("classes")(outputs))


def steps(model_dir, examples=4, log=print, weights="checkpoint"):
    """Class probabilities after each step for the first `examples` test images.

    `weights="checkpoint"`: the model rebuilt from config.json, with the
    weights of the best checkpoint (`checkpoint.checkpoint_paths`), or when
    none can be read, model.keras (`rebuild_model_or_keras`); `"keras"`: the
    model of MODEL_DIR/model.keras. The probabilities of the last step must equal
    the model's own prediction (to 1e-5): an AssertionError says they do not.
    """
    config = run_dir.read_run_config(model_dir)
    images, labels, num_classes = load_test_set(
        config.dataset, config.data_dir, config.test_examples
    )
    images, labels = images[:examples], labels[:examples]
    sequences = data.to_sequences(images, config.sequence, normalize=config.normalize)
    if weights == "keras":
        model, path = load_keras(model_dir), str(RunDir(model_dir).keras_model)
    else:
        model, path = rebuild_model_or_keras(
            model_dir, sequences.shape[1], sequences.shape[2], num_classes, log
        )
    probabilities = step_probabilities(model, sequences)
    model_probabilities = np.asarray(model(sequences, training=False))
    np.testing.assert_allclose(
        probabilities[:, -1],
        model_probabilities,
        atol=1e-5,
        err_msg="last step's output differs from the model's prediction",
    )
    return Steps(probabilities, model_probabilities, images, labels, path, config)
