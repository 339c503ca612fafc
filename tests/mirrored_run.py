"""Trains a few steps with MirroredStrategy over two logical CPU devices.

Run by tests/test_distributed.py in a subprocess: logical devices must be set
before TensorFlow starts. Usage: mirrored_run.py MODEL_DIR REPLICAS [TEXT]
(with TEXT: the language model on that file, else the classifier).
"""

import sys

import tensorflow as tf

from tfrnn.tasks.classify import config as classify_config
from tfrnn.tasks.language_model import config as language_model_config
from tfrnn.training import loop

model_dir, replicas = sys.argv[1], int(sys.argv[2])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
devices = [f"/cpu:{i}" for i in range(replicas)]
strategy = tf.distribute.MirroredStrategy(devices) if replicas > 1 else None
common = dict(
    mode="dynamic",
    units=16,
    max_epochs=1,
    model_dir=model_dir,
    strategy="mirrored" if replicas > 1 else "default",
)
if len(sys.argv) > 3:
    config = language_model_config.Config(
        text=sys.argv[3], batch_size=8, bptt=20, eval_every_steps=1000, **common
    )
else:
    config = classify_config.Config(
        train_examples=512, test_examples=128, batch_size=64, **common
    )
report = loop.train(config, strategy=strategy, log=lambda line: None)
assert report["replicas"] == replicas, report["replicas"]
