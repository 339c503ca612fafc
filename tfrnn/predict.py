"""`python -m tfrnn.predict`: test accuracy and figures of a trained classifier.

    python -m tfrnn.predict --model_dir=runs/default
    python -m tfrnn.predict --model_dir=runs/static --examples=25 --output_dir=/tmp/fig

Reads the SavedModel in MODEL_DIR/export (what `python -m tfrnn.train` wrote),
classifies the test set the run was evaluated on (the first `test_examples`
of config.json, when set) and prints its accuracy, then writes to the output
directory (MODEL_DIR by default):

* `predictions.png`: the first `--examples` test images, each titled
  "pred P / true T", wrong predictions in red.
* `steps.png` (static models only): the class probabilities after each step
  of the sequence, for a few test examples. The Keras model is rebuilt from
  config.json, its weights restored from MODEL_DIR/target/ckpt (or the latest
  checkpoint), and `tfrnn.static_rnn` returns every step's output, to which
  the model's "classes" layer is applied. The last step is the model's own
  prediction.
"""

import dataclasses
import math
import pathlib
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import tfrnn
from tfrnn import data, export, models, report, training
from tfrnn.errors import RunDirError, TfrnnError

FLAGS = flags.FLAGS

TRAIN_FIRST = "train first with `python -m tfrnn.train --model_dir={model_dir}`"
RETRAIN = (
    "delete {model_dir} and train again with `python -m tfrnn.train "
    "--model_dir={model_dir}` and the run's flags"
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
WRONG_COLOR = "tab:red"


class Evaluation(NamedTuple):
    """The exported model's predictions on the run's test set."""

    accuracy: float
    examples: int  # number of test examples classified
    correct: int
    images: np.ndarray  # uint8 [N, H, W] (or [N, H, W, C]), the test images used
    labels: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, num_classes]
    meta: dict  # tfrnn.json of the export
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
    checkpoint: str  # the weights used
    path: pathlib.Path | None  # the figure, when written


# --- reading a run -------------------------------------------------------------


def _model_dir(model_dir):
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        raise RunDirError(
            f"--model_dir={model_dir} does not exist; "
            + TRAIN_FIRST.format(model_dir=model_dir)
        )
    return model_dir


def read_config(model_dir):
    """The `training.Config` of the run in `model_dir` (from config.json)."""
    model_dir = _model_dir(model_dir)
    path = model_dir / "config.json"
    if not path.exists():
        raise RunDirError(
            f"{path} is missing: {model_dir} holds no tfrnn run; "
            + TRAIN_FIRST.format(model_dir=model_dir)
        )
    saved = report.read_json(path, RETRAIN.format(model_dir=model_dir))
    known = {f.name for f in dataclasses.fields(training.Config)}
    return training.Config(**{k: v for k, v in saved.items() if k in known})


def load_export(model_dir):
    """The exported module of the run in `model_dir`, with its `.meta`."""
    model_dir = _model_dir(model_dir)
    directory = model_dir / "export"
    if not (directory / "saved_model.pb").exists():
        raise RunDirError(
            f"no exported model in {directory}; "
            + TRAIN_FIRST.format(model_dir=model_dir)
            + " (it exports to MODEL_DIR/export when training ends)"
        )
    return export.load(
        directory,
        f"delete {directory} and rerun the training command (its flags are in "
        f"{model_dir}/config.json) to export it again",
    )


def load_test_set(dataset, data_dir=None, test_examples=None):
    """uint8 test images and labels: the first `test_examples` (all when None)."""
    arrays = data.load_arrays(dataset, data_dir)
    count = len(arrays.x_test) if test_examples is None else int(test_examples)
    return arrays.x_test[:count], arrays.y_test[:count], arrays.num_classes


def last_reported(model_dir):
    """The last evaluation recorded in report.json, or None."""
    path = pathlib.Path(model_dir) / "report.json"
    if not path.exists():
        return None
    evaluations = report.read_json(path, "delete it or retrain").get("evaluations")
    evaluations = evaluations or []
    return evaluations[-1] if evaluations else None


# --- the exported model on the test set ------------------------------------------


def evaluate_export(model_dir, batch_size=1000):
    """Runs `classify_images` of MODEL_DIR/export over the run's test set."""
    module = load_export(model_dir)
    config = read_config(model_dir)
    meta = module.meta
    images, labels, _ = load_test_set(
        meta["dataset"], config.data_dir, config.test_examples
    )
    probabilities = np.concatenate(
        [
            module.classify_images(tf.constant(images[start : start + batch_size]))
            .numpy()
            .astype(np.float32)
            for start in range(0, len(images), batch_size)
        ]
    )
    correct = int(np.sum(np.argmax(probabilities, -1) == labels))
    return Evaluation(
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


def checkpoint_paths(model_dir):
    """The checkpoints to read, best first: MODEL_DIR/target/ckpt (the target
    was reached), then MODEL_DIR/checkpoints newest first."""
    model_dir = _model_dir(model_dir)
    paths = []
    target = model_dir / "target" / "ckpt"
    if target.with_name("ckpt.index").exists():
        paths.append(str(target))
    state = tf.train.get_checkpoint_state(str(model_dir / "checkpoints"))
    if state is not None:
        paths += list(state.all_model_checkpoint_paths)[::-1]
    if not paths:
        raise RunDirError(
            f"no checkpoint in {model_dir}/target or {model_dir}/checkpoints; "
            + TRAIN_FIRST.format(model_dir=model_dir)
        )
    return paths


def rebuild_model(model_dir, time_steps, features, num_classes, log=print):
    """The Keras model of config.json with the weights of the first readable
    of `checkpoint_paths` (a warning line for each one that is not).

    Returns `(model, checkpoint path)`.
    """
    config = read_config(model_dir)
    model = models.build_classifier(
        config.mode,
        config.cell,
        config.units,
        config.layers,
        num_classes,
        time_steps,
        features,
        config.model,
    )
    path = training.restore_first_readable(
        lambda path: training.restore_model(model, path),
        checkpoint_paths(model_dir),
        log,
        RETRAIN.format(model_dir=model_dir),
    )
    return model, path


def recurrent_layer(model):
    """The model's `tfrnn.models.Recurrent` layer."""
    found = [layer for layer in model.layers if isinstance(layer, models.Recurrent)]
    if len(found) != 1:
        raise ValueError(f"{model.name} has {len(found)} Recurrent layers, not 1")
    return found[0]


def step_probabilities(model, sequences):
    """Class probabilities after every step: `[batch, steps, num_classes]`.

    The recurrence runs with `tfrnn.static_rnn`, which returns every step's
    output; the model's "classes" layer turns each into probabilities. For
    `cnn_rnn` models the steps are the rows of the convolution's feature map.
    """
    recurrent = recurrent_layer(model)
    x = tf.convert_to_tensor(sequences, tf.float32)
    if recurrent.input is not model.inputs[0]:  # cnn_rnn: the recurrence's inputs
        x = keras.Model(model.inputs, recurrent.input)(x, training=False)
    outputs, _ = tfrnn.static_rnn(recurrent.cell, x, training=False)
    return np.asarray(model.get_layer("classes")(outputs))


def plot_steps(model_dir, output_path=None, examples=4):
    """Writes `steps.png`-like figure for a static model; returns the `Steps`.

    The probabilities of the last step must equal the model's own prediction
    (to 1e-5): an AssertionError says they do not.
    """
    config = read_config(model_dir)
    if config.mode != "static":
        raise ValueError(
            f"{model_dir} holds a {config.mode} model; steps are plotted for "
            "--mode=static models (whose graph holds every step)"
        )
    images, labels, num_classes = load_test_set(
        config.dataset, config.data_dir, config.test_examples
    )
    images, labels = images[:examples], labels[:examples]
    sequences = data.to_sequences(images, config.sequence)
    model, path = rebuild_model(
        model_dir, sequences.shape[1], sequences.shape[2], num_classes
    )
    probabilities = step_probabilities(model, sequences)
    model_probabilities = np.asarray(model(sequences, training=False))
    np.testing.assert_allclose(
        probabilities[:, -1],
        model_probabilities,
        atol=1e-5,
        err_msg="last step of static_rnn differs from the model's prediction",
    )
    steps = Steps(probabilities, model_probabilities, images, labels, path, None)
    if output_path is None:
        return steps
    figure = _steps_figure(steps, config)
    output_path = pathlib.Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_path, dpi=100)
    return steps._replace(path=output_path)


# --- figures ------------------------------------------------------------------------


def _figure(**kwargs):
    """A matplotlib Figure on the Agg canvas (no pyplot, no display needed)."""
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def class_names(dataset, num_classes):
    if dataset == "fashion_mnist":
        return FASHION_MNIST_CLASSES
    return tuple(str(c) for c in range(num_classes))


def _show_image(axes, image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    axes.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    axes.set_xticks([])
    axes.set_yticks([])


def plot_predictions(evaluation, output_path, examples=16):
    """A grid of the first `examples` test images titled "pred P / true T".

    Wrong predictions have red titles and frames. Returns the path written.
    """
    count = min(examples, evaluation.examples)
    if count < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    names = class_names(evaluation.meta["dataset"], evaluation.probabilities.shape[1])
    figure = _figure(figsize=(2.0 * columns, 2.2 * rows + 0.5), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    predictions = evaluation.predictions
    for index, axes in enumerate(grid.flat):
        if index >= count:
            axes.axis("off")
            continue
        _show_image(axes, evaluation.images[index])
        predicted, true = int(predictions[index]), int(evaluation.labels[index])
        color = "black" if predicted == true else WRONG_COLOR
        axes.set_title(
            f"pred {names[predicted]} / true {names[true]}", color=color, fontsize=9
        )
        if predicted != true:
            for spine in axes.spines.values():
                spine.set_color(WRONG_COLOR)
                spine.set_linewidth(2)
    wrong = int(np.sum(predictions[:count] != evaluation.labels[:count]))
    figure.suptitle(
        f"{evaluation.meta['mode']} {evaluation.meta['cell']} on "
        f"{evaluation.meta['dataset']} ({evaluation.meta['sequence']}): "
        f"{wrong} of {count} wrong here; test accuracy {evaluation.accuracy:.4f} "
        f"on {evaluation.examples}",
        fontsize=10,
    )
    output_path = pathlib.Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_path, dpi=100)
    return output_path


def _steps_figure(steps, config):
    batch, time_steps, num_classes = steps.probabilities.shape
    names = class_names(config.dataset, num_classes)
    colors = [f"C{c % 10}" for c in range(num_classes)]
    figure = _figure(figsize=(4.0 * batch, 6.0), layout="constrained")
    grid = figure.add_gridspec(2, batch, height_ratios=[1, 1.6])
    x = np.arange(1, time_steps + 1)
    if config.model == "cnn_rnn":
        what = "feature-map row"
    else:
        what = "row" if config.sequence == "rows" else "pixel"
    for b in range(batch):
        true = int(steps.labels[b])
        predicted = int(np.argmax(steps.probabilities[b, -1]))
        image_axes = figure.add_subplot(grid[0, b])
        _show_image(image_axes, steps.images[b])
        image_axes.set_title(
            f"pred {names[predicted]} / true {names[true]}",
            color="black" if predicted == true else WRONG_COLOR,
            fontsize=10,
        )
        axes = figure.add_subplot(grid[1, b])
        for c in range(num_classes):
            if c != true:
                axes.plot(
                    x, steps.probabilities[b, :, c], color=colors[c], lw=1, alpha=0.7
                )
        axes.plot(
            x,
            steps.probabilities[b, :, true],
            color=colors[true],
            lw=3,
            path_effects=[patheffects.withStroke(linewidth=5, foreground="black")],
        )
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlim(1, time_steps)
        axes.set_xlabel(f"{what}s read (1..{time_steps})")
        axes.grid(alpha=0.3)
        if b == 0:
            axes.set_ylabel("class probability")
    figure.legend(
        [Line2D([], [], color=colors[c], lw=2) for c in range(num_classes)],
        names,
        loc="outside right center",
        fontsize=9,
        title="class",
    )
    figure.suptitle(
        f"{config.mode} {config.cell}-{config.units}: class probabilities after "
        f"each {what} (thick outlined line: the true class; last {what} = the model's "
        "prediction)",
        fontsize=11,
    )
    return figure


# --- the command line ----------------------------------------------------------------


def define_flags(flag_values=FLAGS):
    """The command line (into `flag_values`, absl's global FLAGS by default)."""
    flags.DEFINE_string(
        "model_dir",
        None,
        "The run's directory (what `python -m tfrnn.train --model_dir` wrote).",
        required=True,
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "examples",
        16,
        "Test images shown in predictions.png.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        "Where predictions.png and steps.png go (default: --model_dir).",
        flag_values=flag_values,
    )


def main(argv, flag_values=FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    model_dir = flag_values.model_dir
    output_dir = pathlib.Path(flag_values.output_dir or model_dir)
    try:
        _predict(model_dir, output_dir, flag_values.examples)
    except TfrnnError as error:
        raise SystemExit(f"error: {error}") from None


def _predict(model_dir, output_dir, examples):
    evaluation = evaluate_export(model_dir)
    print(
        f"test accuracy {evaluation.accuracy:.4f} ({evaluation.correct} of "
        f"{evaluation.examples} test examples of {evaluation.meta['dataset']})"
    )
    if evaluation.reported is not None:
        print(
            f"training reported {evaluation.reported['test_accuracy']:.4f} at step "
            f"{evaluation.reported['step']}"
        )
    path = plot_predictions(evaluation, output_dir / "predictions.png", examples)
    print(f"wrote {path}")
    if evaluation.meta["mode"] == "static":
        steps = plot_steps(model_dir, output_dir / "steps.png")
        print(f"wrote {steps.path} (weights of {steps.checkpoint})")


if __name__ == "__main__":
    define_flags()
    app.run(main)
