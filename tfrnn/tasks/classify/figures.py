"""The figures of a trained run: test predictions, and probabilities per step.

Matplotlib's Agg canvas only (no pyplot, no display). Each function takes
what `inference` returns and writes one PNG.
"""

import math
import pathlib

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
    """Writes `predictions_figure(evaluation, examples)`; returns the path."""
    figure = predictions_figure(evaluation, examples)
    output_path = pathlib.Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_path, dpi=100)
    return output_path


def predictions_figure(evaluation, examples=16):
    """A grid of the first `examples` test images, each titled "pred P" over
    "true T" (two lines: a column is as wide as "pred T-shirt/top"); wrong
    predictions have red titles and frames. The title above is two lines
    (wrapped further at the figure's width): nothing is drawn past the
    figure's edges or over another title."""
    count = min(examples, evaluation.examples)
    if count < 1:
        raise ValueError(f"examples must be >= 1, got {examples}")
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    names = class_names(evaluation.meta["dataset"], evaluation.probabilities.shape[1])
    width = max(2.0 * columns, 4.0)  # at least the width of the title's lines
    figure = _figure(figsize=(width, 2.4 * rows + 0.8), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    predictions = evaluation.predictions
    for index, axes in enumerate(grid.flat):
        if index >= count:
            axes.axis("off")
            continue
        _show_image(axes, evaluation.images[index])
        predicted, true = int(predictions[index]), int(evaluation.labels[index])
        color = "black" if predicted == true else WRONG_COLOR
        axes.set_title(f"pred {names[predicted]}\ntrue {names[true]}", color=color, fontsize=9)
        if predicted != true:
            for spine in axes.spines.values():
                spine.set_color(WRONG_COLOR)
                spine.set_linewidth(2)
    wrong = int(np.sum(predictions[:count] != evaluation.labels[:count]))
    figure.suptitle(
        f"{evaluation.meta['mode']} {evaluation.meta['cell']} on "
        f"{evaluation.meta['dataset']} ({evaluation.meta['sequence']}):\n"
        f"{wrong} of {count} wrong here; test accuracy {evaluation.accuracy:.4f} "
        f"on {evaluation.examples}",
        fontsize=10,
        wrap=True,
    )
    return figure


def plot_steps(steps, output_path):
    """Writes the class probabilities after each step (`inference.Steps`) of
    each example under its image; returns the path written."""
    figure = _steps_figure(steps)
    output_path = pathlib.Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_path, dpi=100)
    return output_path


def _steps_figure(steps):
    config = steps.config
    batch, time_steps, num_classes = steps.probabilities.shape
    names = class_names(config.dataset, num_classes)
    colors = [f"C{c % 10}" for c in range(num_classes)]
    figure = _figure(figsize=(4.0 * batch, 6.0), layout="constrained")
    grid = figure.add_gridspec(2, batch, height_ratios=[1, 1.6])
    x = np.arange(1, time_steps + 1)
    if config.model == "cnn_rnn":
        what = "feature-map row"
    else:
        what = {"rows": "row", "columns": "column"}.get(config.sequence, "pixel")
    both_ways = config.bidirectional
    ends = " from each end" if both_ways else ""
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
        axes.set_xlabel(f"{what}s read{ends} (1..{time_steps})")
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
        f"{config.mode} {'bidirectional ' if both_ways else ''}{config.cell}-"
        f"{config.units}: class probabilities after each {what}{ends} (thick outlined line: the true class; last {what} = the model's "
        "prediction)",
        fontsize=11,
    )
    return figure
