"""`python -m tfrnn.sample`: text from a trained language model.

    python -m tfrnn.sample --model_dir=runs/language_model --prime="def " --length=300

Reads the SavedModel MODEL_DIR/export (no tfrnn code runs in it) or, with
`--format=checkpoint` (or when there is no export yet), the model rebuilt
from config.json with the weights of its best checkpoint; draws one
character at a time, fed back with the state. The same `--seed` gives the
same text. The library is `tfrnn.tasks.language_model.sampling`.
"""

from absl import flags

from tfrnn import tasks
from tfrnn.training import cli

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """The command line (into `flag_values`, absl's global FLAGS by default)."""
    flags.DEFINE_string("model_dir", tasks.config_class("language_model").model_dir,
                        "The run's directory (`python -m tfrnn.train --task=language_model "
                        "--model_dir`; the default is train's).", flag_values=flag_values)  # fmt: skip
    flags.DEFINE_string("prime", "\n", "The text to start from (characters of the "
                        "training text).", flag_values=flag_values)  # fmt: skip
    flags.DEFINE_integer("length", 500, "Characters to draw after the prime.", lower_bound=1,
                         flag_values=flag_values)  # fmt: skip
    flags.DEFINE_float("temperature", 1.0, "Below 1: likelier characters; above 1: rarer.",
                       flag_values=flag_values)  # fmt: skip
    flags.DEFINE_integer("seed", 0, "Seed of the draws: the same seed, the same text.",
                         flag_values=flag_values)  # fmt: skip
    flags.DEFINE_enum("format", "auto", ["auto", "saved_model", "checkpoint"],
                      "MODEL_DIR/export (saved_model), the best checkpoint (checkpoint), or "
                      "auto: the export if there, else the checkpoint.",
                      flag_values=flag_values)  # fmt: skip


def main(argv, flag_values=FLAGS):
    """Prints the text drawn (`argv`: the program only, `cli.main`'s)."""
    cli.quiet_tensorflow()
    cli.run(_sample, flag_values)


def _sample(flag_values):
    import sys

    from tfrnn.tasks.language_model import sampling

    generator = sampling.load_generator(
        flag_values.model_dir, flag_values.format, log=lambda line: print(line, file=sys.stderr)
    )
    next_characters, vocabulary, state_sizes, _ = generator
    print(sampling.sample(next_characters, vocabulary, state_sizes, flag_values.prime,
                          flag_values.length, flag_values.temperature, flag_values.seed))  # fmt: skip


if __name__ == "__main__":
    cli.main(define_flags, main)
