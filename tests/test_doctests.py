"""The `>>>` examples in the docstrings of every module under tfrnn/ run and
print what they show.

Modules are found by walking the package, so modules added later are covered
too. The examples see `tf`, `keras`, `np` and `tfrnn` without importing them.
A module that cannot be imported fails the test, unless what is missing is an
optional package (not tfrnn's own code and not one of its requirements).
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(tfrnn.__path__, prefix="tfrnn.")
)
REQUIRED = {"tfrnn", "tensorflow", "keras", "numpy", "absl", "tensorflow_datasets"}
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def examples_of(module_name):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in REQUIRED:
            raise
        pytest.skip(f"{module_name} needs the optional package {error.name}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [test for test in finder.find(module) if test.examples]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in examples_of(module_name):
        test.globs.update(tf=tf, keras=keras, np=np, tfrnn=tfrnn)
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples in {module_name} failed"


def test_the_unrolls_have_examples():
    assert {"tfrnn.static", "tfrnn.dynamic"} <= set(MODULES)
    for name in ("tfrnn.static", "tfrnn.dynamic"):
        assert sum(len(test.examples) for test in examples_of(name)) >= 4, name
