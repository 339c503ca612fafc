"""`python -m tfrnn.predict`: what a trained run measures, and its figures
(the command; the run's task, `Task.predict`, does the work).

    python -m tfrnn.predict --model_dir=runs/default
    python -m tfrnn.predict --model_dir=runs/static --examples=25 --output_dir=/tmp/fig

For a classifier (`--task=classify`), it reads the model `python -m
tfrnn.train` wrote, as `--format` says:

* `auto` (default): the SavedModel MODEL_DIR/export when it is there, else
  MODEL_DIR/model.keras (so either file alone is enough);
* `saved_model`: MODEL_DIR/export (`classify_images`, what serving reads);
* `keras`: MODEL_DIR/model.keras (`keras.saving.load_model`).

It classifies the test set the run was evaluated on (the first `test_examples`
of config.json, when set) and prints its accuracy, then writes to the output
directory (MODEL_DIR by default):

* `predictions.png`: the first `--examples` test images, each titled
  "pred P / true T", wrong predictions in red.
* `steps.png`: the class probabilities after each step of the sequence, for
  a few test examples. With the SavedModel, the Keras model is rebuilt from
  config.json and its weights restored from MODEL_DIR/target/ckpt (or the
  newest readable checkpoint; when none can be read, model.keras, with a
  warning); with `keras`, model.keras is that model. Its
  recurrence runs again with the same unroll (static, dynamic or k steps per
  iteration) returning every step's output, to which the model's "classes"
  layer is applied; a bidirectional model's step t is both directions after
  t steps each. The last step is the model's own prediction.

For a language model (`--task=language_model`), it reads the cells on the
first 2,000 held-out characters, with the model rebuilt from config.json and
the weights of its best checkpoint: for each feature of the text (inside a
string, bracket depth, position in the line, indentation) the unit whose
value correlates best with it (printed, and `cells.json`), `cells.html` (the
text coloured by the `--units_to_show`, by default the unit of the strongest
correlation) and `cells.png`.

The libraries are `tfrnn.tasks.classify.inference` and `figures`, and
`tfrnn.tasks.language_model.cells` (they raise typed errors); this module
only turns their errors into one line.
"""

import pathlib

from absl import flags

from tfrnn import tasks
from tfrnn.training import cli

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The command line (into `flag_values`, absl's global FLAGS by default)."""
    flags.DEFINE_string(
        "model_dir",
        tasks.config_class().model_dir,  # train's
        "The run's directory: what `python -m tfrnn.train --model_dir` wrote (the "
        "default is train's; a language model's is "
        f"{tasks.config_class('language_model').model_dir}).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "examples",
        16,
        "Test images shown in predictions.png.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        "format",
        "auto",
        ["auto", "saved_model", "keras"],
        "The model to read: MODEL_DIR/export (saved_model), MODEL_DIR/model.keras "
        "(keras), or auto: the SavedModel if there, else model.keras.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "output_dir",
        None,
        "Where the figures go (default: --model_dir).",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "units_to_show",
        [],
        "Language models: the units cells.html colours the text by, as STATE:UNIT "
        "(e.g. c:17,h:3; default: the unit of the strongest correlation).",
        flag_values=flag_values,
    )


def main(argv, flag_values=FLAGS):
    """Reads the run in --model_dir (`argv`: the program only, `cli.main`'s)."""
    model_dir = flag_values.model_dir
    output_dir = pathlib.Path(flag_values.output_dir or model_dir)
    cli.quiet_tensorflow()
    options = {name: flag_values[name].value for name in ("examples", "format", "units_to_show")}
    cli.run(_predict, model_dir, output_dir, options)


def _predict(model_dir, output_dir, options):
    from tfrnn.training import run_dir

    task = tasks.task_for(run_dir.read_run_config(model_dir))
    run_dir.make_output_dir(output_dir)
    with run_dir.writing(output_dir):  # a full disk or a permission: one line
        task.predict(model_dir, output_dir, options, print)


if __name__ == "__main__":
    cli.main(define_flags, main)
