"""Data sets -> uint8 arrays -> float32 sequence views -> tf.data pipelines."""

import functools
import gzip
import hashlib
import os
import pathlib
import zlib
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from tfrnn.tasks.classify.config import NORMALIZATIONS
from tfrnn.tasks.classify.config import SEQUENCES
from tfrnn.training.errors import DataError
from tfrnn.training.runtime import without_autotune

MNIST_DIR = pathlib.Path(__file__).parents[2] / "datasets" / "mnist"  # tfrnn/datasets
# Debian's dataset-fashion-mnist installs here; TFRNN_FASHION_MNIST_DIR (read
# at import) points elsewhere, e.g. at an empty place to test without it.
FASHION_MNIST_DIR = pathlib.Path(
    os.environ.get("TFRNN_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
)
DATASETS = ("mnist", "fashion_mnist", "tfds:NAME")

_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# MD5s of the *decompressed* canonical zalandoresearch files. Debian's
# dataset-fashion-mnist re-writes the gzip headers (drops the file name, sets
# the mtime), so the .gz MD5s differ from upstream while the IDX data is equal.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
_MNIST_RESTORE = (
    "restore it with `git checkout -- tfrnn/datasets/mnist/{file}` "
    "or reinstall the tfrnn package"
)
_FASHION_RESTORE = "restore it with `apt-get install --reinstall dataset-fashion-mnist`"
_DATA_DIR_MD5SUMS = (
    "a --data_dir for mnist holds the four IDX files and MD5SUMS, their MD5s "
    "(`md5sum *.gz > MD5SUMS`); drop --data_dir to read the copy tfrnn comes with"
)


def fashion_mnist_available(directory=None) -> bool:
    """Whether the four Fashion-MNIST files are in `directory` (default:
    `FASHION_MNIST_DIR`); tests that need them skip when not."""
    directory = pathlib.Path(directory or FASHION_MNIST_DIR)
    return all((directory / name).is_file() for name in _FILES)


class Arrays(NamedTuple):
    x_train: np.ndarray  # uint8 [N, H, W] or [N, H, W, C]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str


class Data(NamedTuple):
    train: tf.data.Dataset  # shuffled (x, y) batches (None: load(pipelines=False))
    test: tf.data.Dataset  # unshuffled (x, y) batches (None: load(pipelines=False))
    x_train: np.ndarray  # float32 [N, time_steps, features]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    time_steps: int
    features: int
    num_classes: int
    name: str
    image_shape: tuple = None  # of one image: (H, W) or (H, W, C)


def read_idx(path) -> np.ndarray:
    """Returns the uint8 array stored in the gzipped IDX file `path`."""
    path = pathlib.Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataError(
            f"{path}: not an IDX file of uint8 data (magic {raw[:4].hex()!r})"
        )
    offset = 4 + 4 * raw[3]  # magic, then one big-endian uint32 per dim
    dims = np.frombuffer(raw[4:offset], ">u4") if len(raw) >= offset else None
    if dims is None or len(raw) - offset != np.prod(dims, dtype=np.int64):
        raise DataError(f"{path}: IDX data is truncated or has extra bytes")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims.astype(np.int64))


def verify_checksums(
    directory,
    md5sums: dict[str, str],
    *,
    decompressed: bool = False,
    restore: str = "replace it with an intact copy",
) -> None:
    """Checks the MD5 of each file in `directory`, raises DataError if one differs.

    md5sums maps file names to hex MD5s; with `decompressed=True` the MD5 is of
    the gunzipped content. `restore` tells how to repair a file (may use {file}).
    """
    directory = pathlib.Path(directory)
    for name, expected in md5sums.items():
        path = directory / name
        hint = restore.format(file=name)
        try:
            with (gzip.open if decompressed else open)(path, "rb") as f:
                found = hashlib.file_digest(f, "md5").hexdigest()
        except FileNotFoundError:
            raise DataError(f"{path}: file is missing; {hint}") from None
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: unreadable ({e}); {hint}") from None
        if found != expected.lower():
            kind = "MD5 of decompressed content" if decompressed else "MD5"
            raise DataError(
                f"{path}: {kind} mismatch: expected {expected}, found {found}; "
                f"the file is corrupt or modified, {hint}"
            )


def _read_md5sums(path: pathlib.Path, restore: str) -> dict[str, str]:
    """Parses an `md5sum` output file into {file name: md5}."""
    try:
        lines = path.read_text().split("\n")
    except FileNotFoundError:
        raise DataError(
            f"{path}: checksum list is missing; {restore.format(file='MD5SUMS')}"
        ) from None
    return {
        line.split()[1].lstrip("*"): line.split()[0] for line in lines if line.strip()
    }


@functools.lru_cache(maxsize=4)
def _load_idx_dataset(directory: pathlib.Path, name: str) -> Arrays:
    """Verifies and reads the four IDX files; cached per (directory, name)."""
    if name == "mnist":
        listing = _MNIST_RESTORE if directory == MNIST_DIR else _DATA_DIR_MD5SUMS
        verify_checksums(
            directory, _read_md5sums(directory / "MD5SUMS", listing), restore=_MNIST_RESTORE
        )
    else:
        verify_checksums(
            directory, FASHION_MNIST_MD5, decompressed=True, restore=_FASHION_RESTORE
        )
    x_train, y_train, x_test, y_test = (read_idx(directory / f) for f in _FILES)
    arrays = Arrays(
        x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), 10, name
    )
    for a in arrays[:4]:
        a.flags.writeable = False  # the cache hands out the same arrays
    return arrays


def _load_tfds(name: str, data_dir) -> Arrays:
    """Loads train/test of an already prepared TFDS data set into numpy."""
    import tensorflow_datasets as tfds

    dataset = f"tfds:{name}"
    try:
        (train, test), info = tfds.load(
            name,
            split=["train", "test"],
            data_dir=data_dir,
            download=False,
            as_supervised=True,
            with_info=True,
        )
    except tfds.core.DatasetNotFoundError:
        raise DataError(
            f"{dataset}: TFDS has no data set called {name!r}; see "
            "https://www.tensorflow.org/datasets/catalog"
        ) from None
    except AssertionError as e:  # raised by tfds when the data is not prepared
        raise DataError(
            f"{dataset}: data not prepared in {data_dir or 'the default TFDS dir'} "
            f"and download is disabled; prepare it first on a machine with "
            f"internet (`tfds build {name} --data_dir=DIR`) and pass "
            f"--data_dir=DIR ({e})"
        ) from None
    except ValueError as e:  # e.g. no "train" or "test" split
        raise DataError(
            f"{dataset}: {e}; tfrnn needs 'train' and 'test' splits"
        ) from None

    def to_numpy(ds):
        # Chunked batches: batch_size=-1 batches by the split sizes, which
        # tfds.testing.mock_data leaves unset (it then aborts the process).
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        if not batches:
            raise DataError(f"{dataset}: a split is empty")
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches]).astype(np.int64)
        return (x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x), y

    return Arrays(
        *to_numpy(train), *to_numpy(test), info.features["label"].num_classes, dataset
    )


def load_arrays(dataset: str = "mnist", data_dir=None) -> Arrays:
    """Returns uint8 images and int64 labels of `dataset`, checksum-verified.

    dataset: "mnist" (embedded), "fashion_mnist" (apt package) or "tfds:NAME"
    (prepared TFDS data, no download). data_dir overrides the default location.
    """
    if dataset == "mnist":
        directory = pathlib.Path(data_dir or MNIST_DIR)
        if data_dir and not directory.is_dir():
            raise DataError(
                f"mnist: --data_dir={directory} "
                + ("is not a directory" if directory.exists() else "does not exist")
                + "; drop --data_dir to read the copy tfrnn comes with, or name "
                "a directory of the four IDX files and their MD5SUMS"
            )
        return _load_idx_dataset(directory, dataset)
    if dataset == "fashion_mnist":
        directory = pathlib.Path(data_dir or FASHION_MNIST_DIR)
        if not directory.is_dir():
            raise DataError(
                f"fashion_mnist: {directory} does not exist; run "
                "`apt-get install dataset-fashion-mnist` or pass --data_dir"
            )
        return _load_idx_dataset(directory, dataset)
    if dataset.startswith("tfds:") and dataset[5:]:
        return _load_tfds(dataset[5:], data_dir)
    raise DataError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")


def pixel_permutation(pixels: int, seed: int = 0) -> np.ndarray:
    """The fixed order of the `permuted` view (also applied by exported models)."""
    return np.random.default_rng(seed).permutation(pixels)


def to_sequences(
    images: np.ndarray,
    sequence: str = "rows",
    permutation_seed: int = 0,
    normalize: str = "unit",
) -> np.ndarray:
    """Scales uint8 images to float32 sequences [N, T, F].

    rows: T=H, F=W*C (step t: row t); columns: T=W, F=H*C (step t: column t,
    top to bottom; PyTorch's `x.permute(2, 0, 1)` of `[N, H, W]` images);
    pixels: T=H*W, F=C; permuted: pixels in the fixed order
    np.random.default_rng(permutation_seed).permutation(H*W).
    normalize: "unit", x / 255 in [0, 1]; "symmetric", (x / 255 - 0.5) / 0.5
    in [-1, 1] (torchvision's `Normalize((0.5,), (0.5,))` after `ToTensor`).
    """
    if sequence not in SEQUENCES:
        raise DataError(f"unknown sequence {sequence!r}; choose one of {SEQUENCES}")
    if normalize not in NORMALIZATIONS:
        raise DataError(f"unknown normalize {normalize!r}; choose one of {NORMALIZATIONS}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"expected uint8 images [N,H,W] or [N,H,W,C], got "
            f"{images.dtype} {images.shape}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    n, h, w, c = images.shape
    x = images.astype(np.float32) / np.float32(255)
    if normalize == "symmetric":
        x = (x - np.float32(0.5)) / np.float32(0.5)
    if sequence == "rows":
        return x.reshape(n, h, w * c)
    if sequence == "columns":
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(n, w, h * c)
    x = x.reshape(n, h * w, c)
    if sequence == "permuted":
        x = x[:, pixel_permutation(h * w, permutation_seed)]
    return x


def make_dataset(
    x,
    y,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    drop_remainder: bool = False,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches in-memory (x, y) into a tf.data pipeline without AUTOTUNE.

    shuffle: seeded full-set shuffle, reshuffled every epoch.
    """
    if batch_size <= 0:
        raise DataError(f"batch_size must be > 0, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return without_autotune(ds.batch(batch_size, drop_remainder=drop_remainder))


def _first(n: Optional[int], what: str, *arrays):
    """Returns the first n examples of each array (all when n is None)."""
    if n is None:
        return arrays
    if n <= 0 or n > len(arrays[0]):
        raise DataError(f"{what} must be in 1..{len(arrays[0])}, got {n}")
    return tuple(a[:n] for a in arrays)


def load(
    dataset: str = "mnist",
    sequence: str = "rows",
    batch_size: int = 128,
    seed: int = 0,
    train_examples: Optional[int] = None,
    test_examples: Optional[int] = None,
    data_dir=None,
    *,
    pipelines: bool = True,
    normalize: str = "unit",
) -> Data:
    """Loads `dataset` as `sequence` views and builds train/test pipelines.

    `pipelines=False` leaves `train` and `test` None, for a caller that reads
    the arrays only: each pipeline holds a copy of its arrays (for MNIST,
    1.4 s and 375 MB more at start-up on a 2-core CPU).

    The train pipeline is shuffled with `seed`; the `permuted` order is fixed
    (permutation_seed=0) so the task does not change with the training seed.
    `normalize`: pixels in [0, 1] ("unit") or [-1, 1] ("symmetric"), as
    `to_sequences`.
    """
    arrays = load_arrays(dataset, data_dir)
    x_train, y_train = _first(
        train_examples, "train_examples", arrays.x_train, arrays.y_train
    )
    x_test, y_test = _first(
        test_examples, "test_examples", arrays.x_test, arrays.y_test
    )
    x_train, x_test = (
        to_sequences(x, sequence, normalize=normalize) for x in (x_train, x_test)
    )
    train = test = None
    if pipelines:
        train = make_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed)
        test = make_dataset(x_test, y_test, batch_size, shuffle=False)
    return Data(
        train=train,
        test=test,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        time_steps=x_train.shape[1],
        features=x_train.shape[2],
        num_classes=arrays.num_classes,
        name=arrays.name,
        image_shape=arrays.x_test.shape[1:],
    )
