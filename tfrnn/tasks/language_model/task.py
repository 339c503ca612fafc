"""The language-model task: truncated BPTT over parallel streams of a text.

The training text is cut into `batch_size` contiguous streams (`data.streams`);
step s of an epoch trains on characters `[s*K, (s+1)*K)` of every stream
(K = `bptt`) and their successors, from the state the streams ended step
s - 1 with: a carried state, kept in variables (saved in every checkpoint
with the weights), read as the step's initial state and overwritten with its
final one; no gradient crosses it. Step 0 of each epoch starts from zeros.
The loss is the mean cross-entropy over every character of every stream.

A step's batch is the streams' row numbers (with the step), so a
`tf.distribute` strategy splits the streams over its replicas like any
batch: each replica reads its rows of the text and of the carried state,
and every replica writes back the whole new state (gathered from all),
whatever rows each one had.

Held-out bits per character read the last 10 % of the text the same way:
`batch_size` streams, the state carried across chunks (each stream starts
from zeros once; the tail shorter than a chunk is not read).
"""

import math

import numpy as np
import tensorflow as tf

from tfrnn.tasks.language_model import data as data_lib
from tfrnn.tasks.language_model import models
from tfrnn.training import export as export_lib
from tfrnn.training import run_dir
from tfrnn.training import task
from tfrnn.training.clock import Target
from tfrnn.training.errors import DataError

LN2 = math.log(2.0)
READ_CHARACTERS = 2000  # of the held-out text, for `predict`


class Task(task.Task):
    """Learn `config.text` (by default Python's standard library) to `config.target_bpc`."""

    progress_labels = {"bpc": "train bpc"}
    unit = "characters"

    def load_data(self):
        config = self.config
        self.text = data_lib.load(config.text)
        streams = self._streams(self.text.train, "training text")
        self.test_streams = self._streams(self.text.test, "held-out text (the last 10 %)")
        self.steps_per_epoch = data_lib.chunks_per_stream(streams.shape[1], config.bptt)
        self.time_steps = config.bptt
        self.streams = tf.constant(streams)

    def _streams(self, ids, what):
        """`data.streams` of `ids`, refused (`DataError`) without one full chunk."""
        config = self.config
        streams = data_lib.streams(ids, config.batch_size)
        if data_lib.chunks_per_stream(streams.shape[1], config.bptt) < 1:
            raise DataError(
                f"the {what}, {len(ids)} characters, is too short for "
                f"--batch_size={config.batch_size} streams of --bptt={config.bptt}+1 "
                "characters: lower them, or give a longer --text"
            )
        return streams

    def batches(self, epoch, first_step):
        """Chunks `first_step .. steps_per_epoch - 1`, each a batch of the
        streams: `{"step": [batch] (the chunk), "row": [batch] (0, 1, ...)}`."""
        rows = tf.data.Dataset.range(self.config.batch_size)
        return tf.data.Dataset.range(first_step, self.steps_per_epoch).flat_map(
            lambda step: rows.map(lambda row: {"step": step, "row": row})
        ).batch(self.config.batch_size)

    def build_model(self):
        model = models.build_language_model(
            self.config, len(self.text.vocabulary), self.time_steps
        )
        batch = self.config.batch_size
        # Under a strategy (built in its scope): every replica assigns the
        # same whole state; the first one's is kept.
        self.carried = [
            tf.Variable(tf.zeros([batch, size]), trainable=False, name=f"carried_{i}",
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)  # fmt: skip
            for i, size in enumerate(models.state_sizes(model.get_layer("rnn").cell))
        ]
        self._evaluate_chunk = tf.function(
            lambda x, y, state: self._cross_entropy(model, x, y, state, training=False),
            autograph=False,
        )
        return model

    def checkpointed(self):
        return {"carried_state": self.carried}

    @property
    def examples_per_step(self):
        return self.config.batch_size * self.config.bptt

    def loss(self, model, batch):
        """Summed cross-entropy (nats, and bits as "bpc") of the batch's
        chunk on the batch's rows (this replica's)."""
        bptt = self.config.bptt
        rows = tf.cast(batch["row"], tf.int32)
        start = tf.cast(batch["step"][0], tf.int32) * bptt
        streams = tf.gather(self.streams, rows)
        x = tf.slice(streams, [0, start], [-1, bptt])  # time known: static too
        y = tf.slice(streams, [0, start + 1], [-1, bptt])
        first = tf.equal(start, 0)
        state = [tf.where(first, 0.0, tf.gather(c, rows)) for c in self.carried]
        loss_sum, final_state = self._cross_entropy(model, x, y, state, training=True)
        self._carry(rows, final_state)
        return loss_sum, {"bpc": loss_sum / LN2}

    def _carry(self, rows, final_state):
        """Writes the rows' final state into the carried state (read as a
        variable next step: no gradient crosses), gathered over replicas."""
        replicas = tf.distribute.get_replica_context()
        all_rows = replicas.all_gather(rows, axis=0)[:, tf.newaxis]
        for carried, value in zip(self.carried, final_state):
            value = replicas.all_gather(tf.cast(value, carried.dtype), axis=0)
            carried.assign(tf.scatter_nd(all_rows, value, carried.shape))

    @staticmethod
    def _cross_entropy(model, x, y, state, training):
        """`(summed cross-entropy in nats, final state leaves)` of chunk `x`
        with targets `y`, from `state`."""
        logits, *final_state = model([x, *state], training=training)
        per_character = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
        return tf.reduce_sum(per_character), final_state

    @property
    def target(self):
        return Target("test_bpc", self.config.target_bpc, higher_is_better=False)

    def evaluate(self, model):
        """`{"test_bpc": b}`: the held-out streams read chunk by chunk, the
        state carried."""
        streams, bptt = self.test_streams, self.config.bptt
        state = [tf.zeros([len(streams), c.shape[1]]) for c in self.carried]
        total, count = 0.0, 0
        for chunk in range(data_lib.chunks_per_stream(streams.shape[1], bptt)):
            x = tf.constant(streams[:, chunk * bptt : (chunk + 1) * bptt])
            y = tf.constant(streams[:, chunk * bptt + 1 : (chunk + 1) * bptt + 1])
            loss_sum, state = self._evaluate_chunk(x, y, state)
            total, count = total + float(loss_sum), count + int(np.prod(y.shape))
        return {"test_bpc": total / count / LN2}

    def export(self, model, run):
        vocabulary = run.path / "vocabulary.json"  # also the export's asset
        run_dir.write_json(vocabulary, {"characters": list(self.text.vocabulary)})
        module = Generator(model, self.config, self.text, vocabulary)
        return export_lib.export_run(
            module, {"serving_default": module.next_characters}, module.meta, model, run
        )

    def report_fields(self, evaluations):
        return {
            "best_test_bpc": self.target.best(evaluations),
            "text": {"source": self.text.source, "sha256": self.text.sha256},
            "vocabulary_size": len(self.text.vocabulary),
            "train_characters": len(self.text.train),
            "test_characters": len(self.text.test),
        }

    def summary_rows(self, report):
        return [("text", report["text"]["source"]), ("vocabulary", report["vocabulary_size"])]

    def predict(self, model_dir, output_dir, options, log):
        """Reads the cells on the first `READ_CHARACTERS` held-out characters:
        the best unit per text feature (printed, and cells.json), cells.html
        (the text coloured by `options["units_to_show"]`, `STATE:UNIT` each,
        by default the unit of the strongest correlation) and cells.png."""
        import sys

        from tfrnn.tasks.language_model import cells, sampling

        model, text, path = sampling.load_model(model_dir, lambda line: print(line, file=sys.stderr))
        ids = text.test[:READ_CHARACTERS]
        excerpt = "".join(text.vocabulary[i] for i in ids)
        states = cells.unit_states(model, ids, cells.leaf_names(self.config.cell, self.config.layers))
        shown = cells.parse_units(options["units_to_show"], states)
        features = cells.text_features(excerpt)
        rows = cells.best_units(features, states)
        output_dir.mkdir(parents=True, exist_ok=True)
        run_dir.write_json(output_dir / "cells.json", {"checkpoint": path, "units": rows})
        run = run_dir.RunDir(model_dir)
        if run.report.exists():  # the table goes into the run's report too
            report = run_dir.read_json(run.report, f"delete {run.report} or retrain")
            run_dir.write_json(run.report, {**report, "cells": {"checkpoint": path, "units": rows}})
        log(f"the units that best follow the held-out text ({len(ids)} characters; {path}):")
        for row in rows:
            log(f"  {row['feature']:<14} {row['state']} unit {row['unit']}: r = "
                f"{row['correlation']:+.3f}")  # fmt: skip
        if not shown:
            best = max(rows, key=lambda row: abs(row["correlation"]))
            shown = [(best["state"], best["unit"])] if best["unit"] is not None else []
        cells.write_html(excerpt, [(f"{state} unit {unit}", states[state][:, unit])
                                   for state, unit in shown], output_dir / "cells.html")  # fmt: skip
        cells.plot(excerpt, features, states, rows, output_dir / "cells.png")
        log(f"wrote {output_dir / 'cells.html'}, {output_dir / 'cells.png'} and "
            f"{output_dir / 'cells.json'}")  # fmt: skip


class Generator(tf.Module):
    """The exported model: `next_characters(ids, state_0, ...)` ->
    `{"log_probabilities": [batch, time, vocabulary], "state_0": ..., ...}`,
    the next character's log-probabilities after each of `ids` and the state
    after the last, for a dynamic copy of the model (any `time`, 1 to
    generate); `meta["vocabulary"]` (tfrnn.json) and the asset
    vocabulary.json (`{"characters": [...]}`) give each id's character."""

    def __init__(self, model, config, text, vocabulary_file):
        super().__init__()
        self.model = models.build_language_model(
            config, len(text.vocabulary), None, mode="dynamic"
        )
        self.model.set_weights(model.get_weights())
        self.vocabulary_file = tf.saved_model.Asset(str(vocabulary_file))
        self.meta = {
            "task": config.task, "mode": config.mode, "cell": config.cell,
            "units": config.units, "layers": config.layers,
            "vocabulary": list(text.vocabulary), "text": text.source,
        }  # fmt: skip
        sizes = models.state_sizes(self.model.get_layer("rnn").cell)
        self.meta["state_sizes"] = sizes
        specs = [tf.TensorSpec([None, None], tf.int32, name="ids")] + [
            tf.TensorSpec([None, size], tf.float32, name=f"state_{i}")
            for i, size in enumerate(sizes)
        ]
        self.next_characters = tf.function(self._next_characters, input_signature=specs)

    def _next_characters(self, ids, *state):
        return models.next_characters(self.model, ids, *state)
