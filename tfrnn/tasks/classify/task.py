"""The classifier task: images read as sequences, one class per sequence.

The training set stays in memory as one tensor; a `tf.data` pipeline of
example indices (a seeded permutation per epoch) says which rows make each
batch, so the batches from any `(epoch, step)` are known without a data
iterator to save. The loss is the mean sparse cross-entropy of the softmax
over the last valid output; the target is a test accuracy.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from tfrnn.tasks.classify import data as data_lib
from tfrnn.tasks.classify import evaluation
from tfrnn.tasks.classify import export
from tfrnn.tasks.classify import models
from tfrnn.training import task
from tfrnn.training.clock import Target
from tfrnn.training.errors import ConfigError


class Task(task.Task):
    """Classify `config.dataset` read as `config.sequence` to `config.target_accuracy`."""

    progress_labels = {"accuracy": "train acc"}

    def load_data(self):
        config = self.config
        self.data = data_lib.load(
            config.dataset,
            config.sequence,
            config.batch_size,
            config.seed,
            config.train_examples,
            config.test_examples,
            config.data_dir,
            pipelines=False,  # batches are of example indices (`batches`)
            normalize=config.normalize,
        )
        self.steps_per_epoch = steps_per_epoch(config, len(self.data.x_train))
        self.time_steps = self.data.time_steps
        self.x_train = tf.constant(self.data.x_train)
        self.y_train = tf.constant(self.data.y_train)

    def batches(self, epoch, first_step):
        """This epoch's batches of example indices, from step `first_step` on."""
        batch_size = self.config.batch_size
        order = np.random.default_rng([self.config.seed, epoch]).permutation(
            len(self.data.x_train)
        )
        return (
            tf.data.Dataset.from_tensor_slices(order.astype(np.int32))
            .skip(first_step * batch_size)
            .batch(batch_size, drop_remainder=True)
        )

    def build_model(self):
        data = self.data
        model = models.classifier_for(
            self.config, data.num_classes, data.time_steps, data.features
        )
        self._predict = evaluation.predictor(model)
        return model

    def loss(self, model, indices):
        """Summed cross-entropy and correct predictions of the rows `indices`."""
        x = tf.gather(self.x_train, indices)
        y = tf.gather(self.y_train, indices)
        probabilities = model(x, training=True)
        per_example = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        correct = tf.reduce_sum(tf.cast(tf.argmax(probabilities, -1) == y, tf.float32))
        return tf.reduce_sum(per_example), {"accuracy": correct}

    @property
    def target(self):
        return Target("test_accuracy", self.config.target_accuracy)

    def evaluate(self, model):
        """`{"test_accuracy": a}` over the whole test set (`model` is the one
        `build_model` built)."""
        accuracy = evaluation.accuracy(self._predict, self.data.x_test, self.data.y_test)
        return {"test_accuracy": accuracy}

    def export(self, model, run_dir):
        return export.export_run(model, self.config, self.data, run_dir)

    def report_fields(self, evaluations):
        return {
            "train_examples": len(self.data.x_train),
            "test_examples": len(self.data.x_test),
        }

    def predict(self, model_dir, output_dir, options, log):
        """The test accuracy of the run's export (`options["format"]`),
        predictions.png (the first `options["examples"]` test images) and
        steps.png (class probabilities after each step)."""
        from tfrnn.tasks.classify import figures
        from tfrnn.tasks.classify import inference

        evaluation = inference.evaluate_export(model_dir, options["format"])
        log(
            f"test accuracy {evaluation.accuracy:.4f} ({evaluation.correct} of "
            f"{evaluation.examples} test examples of {evaluation.meta['dataset']}; "
            f"{evaluation.path})"
        )
        if evaluation.reported is not None:
            log(
                f"training reported {evaluation.reported['test_accuracy']:.4f} at step "
                f"{evaluation.reported['step']}"
            )
        path = figures.plot_predictions(
            evaluation, output_dir / "predictions.png", options["examples"]
        )
        log(f"wrote {path}")
        steps = inference.steps(
            model_dir,
            log=lambda line: print(line, file=sys.stderr),
            weights="keras" if evaluation.format == "keras" else "checkpoint",
        )
        path = figures.plot_steps(steps, output_dir / "steps.png")
        log(f"wrote {path} (weights of {steps.checkpoint})")


def steps_per_epoch(config, examples):
    """Full batches per epoch (the last partial one is dropped)."""
    if examples // config.batch_size == 0:
        raise ConfigError(
            f"--batch_size={config.batch_size} is larger than the "
            f"{examples} training examples; lower it"
        )
    return examples // config.batch_size
