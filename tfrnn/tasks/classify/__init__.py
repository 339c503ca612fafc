"""The classifier task: MNIST-like images read as sequences (rows, pixels,
permuted pixels), one class each, trained to a test accuracy.

`config` (its flags), `task` (the `Task`), `data` (images -> sequences),
`models` (the classifiers), `evaluation`, `export` (the SavedModel's
signatures), `inference` and `figures` (`python -m tfrnn.predict`).
"""
