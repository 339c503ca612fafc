"""Text from a trained language model, one character at a time.

The model is read as `next_characters(ids [batch, time], *state leaves) ->
{"log_probabilities": [batch, time, vocabulary], "state_i": ...}`: the
SavedModel's signature (no tfrnn needed), or `keras_step(model)` over a Keras
model. The prime is read in one call; each next character is drawn from the
last step's distribution (sharpened or flattened by `temperature`) and fed
back with the state.

    >>> vocabulary = ("?", "a", "b")
    >>> def always_b(ids, *state):  # log-probabilities that pick "b"
    ...     log_p = tf.math.log(tf.constant([[[1e-9, 1e-9, 1.0]]]))
    ...     return {"log_probabilities": tf.tile(log_p, [1, ids.shape[1], 1]), "state_0": state[0]}
    >>> sample(always_b, vocabulary, [3], prime="a", length=4)
    'abbbb'
"""

import numpy as np
import tensorflow as tf

from tfrnn.tasks.language_model import data, models
from tfrnn.tasks.language_model.data import UNKNOWN
from tfrnn.training import checkpoint, export, run_dir
from tfrnn.training.errors import DataError, RunDirError

FORMATS = ("auto", "saved_model", "checkpoint")


def encode_prime(prime, vocabulary):
    """The ids of `prime`; `DataError` naming the characters the model has
    never seen."""
    ids = {character: i for i, character in enumerate(vocabulary)}
    unseen = sorted({c for c in prime if c not in ids or c == UNKNOWN})
    if unseen:
        raise DataError(
            f"--prime holds characters the model never saw in training: "
            f"{''.join(unseen)!r}; use characters of its text"
        )
    return [ids[c] for c in prime]


def sample(next_characters, vocabulary, state_sizes, prime="\n", length=500,
           temperature=1.0, seed=0):  # fmt: skip
    """`prime` followed by `length` drawn characters (the same for the same
    `seed`). `temperature` < 1 picks likelier characters, > 1 rarer ones."""
    if not prime:
        raise DataError("--prime is empty: give at least one character to start from")
    if not temperature > 0:
        raise DataError(f"--temperature={temperature} must be > 0 (1: the model's own)")
    rng = np.random.default_rng(seed)
    state = [tf.zeros([1, size]) for size in state_sizes]
    ids = encode_prime(prime, vocabulary)
    drawn = []
    for _ in range(length):
        out = next_characters(tf.constant([ids], tf.int32), *state)
        state = [out[f"state_{i}"] for i in range(len(state_sizes))]
        log_p = np.asarray(out["log_probabilities"][0, -1], np.float64) / temperature
        log_p[0] = -np.inf  # never the unknown-character symbol
        p = np.exp(log_p - log_p.max())
        ids = [int(rng.choice(len(p), p=p / p.sum()))]
        drawn.append(vocabulary[ids[0]])
    return prime + "".join(drawn)


def keras_step(model):
    """`next_characters` over a Keras language model (inputs `[ids, *state]`,
    outputs `[logits, *state]`; a dynamic one, for any length)."""

    return tf.function(
        lambda ids, *state: models.next_characters(model, ids, *state),
        autograph=False,
        reduce_retracing=True,
    )


def load_generator(model_dir, format="auto", log=print):
    """`(next_characters, vocabulary, state sizes, what was read)` of the
    language model in `model_dir`: its SavedModel (`saved_model`), or the
    model rebuilt from config.json with the weights of its best readable
    checkpoint (`checkpoint`); `auto`: the SavedModel when there is one."""
    run = run_dir.existing(model_dir)
    if format == "auto":
        format = "saved_model" if (run.export / "saved_model.pb").exists() else "checkpoint"
    if format == "saved_model":
        module = export.load(run.export, f"delete {run.export} and rerun the training "
                             "command to export it again (or use --format=checkpoint)")  # fmt: skip
        _check_task(module.meta.get("task"), run)
        meta = module.meta

        def next_characters(ids, *state):  # holds `module`: its variables live as long
            return module.next_characters(ids, *state)

        return next_characters, tuple(meta["vocabulary"]), meta["state_sizes"], str(run.export)
    model, text, path = load_model(model_dir, log)
    sizes = models.state_sizes(model.get_layer("rnn").cell)
    return keras_step(model), text.vocabulary, sizes, path


def load_model(model_dir, log=print):
    """`(model, text, checkpoint path)`: the run's model rebuilt from
    config.json (dynamic, for any length) with the weights of its best
    readable checkpoint, and its text (`data.load`)."""
    run = run_dir.existing(model_dir)
    config = run_dir.read_run_config(model_dir)
    _check_task(config.task, run)
    text = data.load(config.text)
    model = models.build_language_model(config, len(text.vocabulary), None, mode="dynamic")
    path = checkpoint.restore_first_readable(
        lambda path: checkpoint.restore_model(model, path),
        checkpoint.checkpoint_paths(model_dir),
        log,
        run_dir.RETRAIN.format(model_dir=run),
    )
    return model, text, path


def _check_task(task, run):
    if task != "language_model":
        raise RunDirError(
            f"{run} holds a {task or 'classify'} run, not a language model: sample one "
            "trained with `python -m tfrnn.train --task=language_model`"
        )
