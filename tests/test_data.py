import gzip
import hashlib
import pathlib
import shutil
import socket

import numpy as np
import pytest

from tfrnn.tasks.classify import data
from tfrnn.training.errors import DataError

MNIST_FILES = sorted(p.name for p in data.MNIST_DIR.glob("*.gz"))
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def md5(path):
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def write_gz(path, raw):
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.fixture
def mnist_copy(tmp_path):
    """A writable copy of the embedded MNIST directory."""
    for p in data.MNIST_DIR.iterdir():
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- embedded MNIST ---------------------------------------------------------


def test_embedded_mnist_files_are_shipped():
    assert MNIST_FILES == sorted(data._FILES)
    assert (data.MNIST_DIR / "MD5SUMS").is_file()


def test_mnist_loads_real_data():
    a = data.load_arrays("mnist")
    assert a.name == "mnist" and a.num_classes == 10
    assert a.x_train.shape == (60000, 28, 28) and a.x_test.shape == (10000, 28, 28)
    assert a.x_train.dtype == np.uint8 and a.x_test.dtype == np.uint8
    assert a.y_train.dtype == np.int64 and a.y_test.dtype == np.int64
    assert a.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert a.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(a.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(a.y_test).tolist() == MNIST_TEST_COUNTS
    assert a.x_train.max() == 255 and a.x_train.min() == 0


def test_mnist_load_is_cached_and_read_only():
    a, b = data.load_arrays("mnist"), data.load_arrays("mnist")
    assert a is b
    with pytest.raises(ValueError):
        a.x_train[0, 0, 0] = 1


# ---- checksums and IDX parsing ----------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_checksum_mismatch_names_file_checksums_and_fix(mnist_copy, damage):
    name = "t10k-labels-idx1-ubyte.gz"
    path = mnist_copy / name
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[100] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    path.write_bytes(raw)
    with pytest.raises(DataError) as e:
        data.load_arrays("mnist", data_dir=mnist_copy)
    msg = str(e.value)
    assert name in msg
    assert "ec29112dd5afa0611ce80d1b7f02629c" in msg  # expected (MD5SUMS)
    assert md5(path) in msg  # found
    assert f"git checkout -- tfrnn/datasets/mnist/{name}" in msg


def test_missing_file_is_a_data_error(mnist_copy):
    (mnist_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*missing"):
        data.load_arrays("mnist", data_dir=mnist_copy)


def test_verify_checksums_accepts_good_files_and_custom_hint(tmp_path):
    write_gz(tmp_path / "a.gz", b"hello")
    good = {"a.gz": md5(tmp_path / "a.gz")}
    data.verify_checksums(tmp_path, good)
    data.verify_checksums(
        tmp_path, {"a.gz": hashlib.md5(b"hello").hexdigest()}, decompressed=True
    )
    with pytest.raises(DataError, match="do X to a.gz"):
        data.verify_checksums(tmp_path, {"a.gz": "0" * 32}, restore="do X to {file}")


def test_read_idx_parses_header_and_data(tmp_path):
    raw = b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    path = write_gz(tmp_path / "ok.gz", raw + bytes(range(6)))
    np.testing.assert_array_equal(data.read_idx(path), [[0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize(
    "raw, problem",
    [
        (
            b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + bytes(3),
            "not an IDX file",
        ),  # float32
        (b"\x08\x03\x00\x00" + bytes(20), "not an IDX file"),  # garbage magic
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(4), "truncated"),
        (b"\x00\x00\x08\x03" + bytes(3), "truncated"),  # header cut off
    ],
)
def test_garbled_idx_is_a_data_error_naming_the_file(tmp_path, raw, problem):
    path = write_gz(tmp_path / "bad-idx1-ubyte.gz", raw)
    with pytest.raises(DataError, match=f"bad-idx1-ubyte.gz.*{problem}"):
        data.read_idx(path)


def test_non_gzip_and_missing_idx_are_data_errors(tmp_path):
    (tmp_path / "plain.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="plain.gz"):
        data.read_idx(tmp_path / "plain.gz")
    with pytest.raises(DataError, match="nothere.gz"):
        data.read_idx(tmp_path / "nothere.gz")


# ---- sequence views ---------------------------------------------------------


@pytest.fixture(scope="module")
def images():
    return data.load_arrays("mnist").x_train[:100]


def test_rows_and_pixels_views(images):
    rows = data.to_sequences(images, "rows")
    pixels = data.to_sequences(images, "pixels")
    assert rows.shape == (100, 28, 28) and pixels.shape == (100, 784, 1)
    assert rows.dtype == np.float32 and pixels.dtype == np.float32
    np.testing.assert_array_equal(rows, images / np.float32(255))
    np.testing.assert_array_equal(pixels[:, :, 0], rows.reshape(100, 784))
    assert rows.min() == 0.0 and rows.max() == 1.0


def test_permuted_view_is_a_fixed_permutation_of_pixels(images):
    pixels = data.to_sequences(images, "pixels")
    p0 = data.to_sequences(images, "permuted", permutation_seed=0)
    perm = np.random.default_rng(0).permutation(784)
    assert p0.shape == (100, 784, 1)
    np.testing.assert_array_equal(p0, pixels[:, perm])
    np.testing.assert_array_equal(p0, data.to_sequences(images, "permuted", 0))
    assert not np.array_equal(p0, data.to_sequences(images, "permuted", 1))
    assert not np.array_equal(p0, pixels)


def test_channels_go_into_features():
    rgb = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    assert data.to_sequences(rgb, "rows").shape == (2, 4, 15)
    assert data.to_sequences(rgb, "pixels").shape == (2, 20, 3)


def test_columns_view_reads_column_t_at_step_t():
    """columns: step t is column t, top to bottom (PyTorch's `x.permute(2, 0, 1)` of
    `[N, H, W]`); with channels each pixel's channels follow each other."""
    gray = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)  # H=3, W=4
    columns = data.to_sequences(gray, "columns")
    assert columns.shape == (2, 4, 3) and columns.dtype == np.float32
    # image 0 is [[0 1 2 3], [4 5 6 7], [8 9 10 11]]: column 1 is 1, 5, 9
    np.testing.assert_array_equal(columns[0, 1] * 255, [1, 5, 9])
    np.testing.assert_array_equal(columns[1, 3] * 255, [15, 19, 23])
    rgb = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    columns = data.to_sequences(rgb, "columns")
    assert columns.shape == (2, 5, 12)
    for t in range(5):  # column t: pixels (0, t), (1, t), ... each as R, G, B
        expected = [rgb[1, i, t, ch] for i in range(4) for ch in range(3)]
        np.testing.assert_array_equal(columns[1, t] * 255, expected)


def test_symmetric_normalize_is_torchvisions_half_half(images):
    """symmetric: (x / 255 - 0.5) / 0.5, torchvision's ToTensor + Normalize((0.5,), (0.5,))."""
    pixels = np.array([[[0, 51, 255]]], np.uint8)
    unit = data.to_sequences(pixels, "rows")
    symmetric = data.to_sequences(pixels, "rows", normalize="symmetric")
    np.testing.assert_allclose(unit[0, 0], [0.0, 0.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(symmetric[0, 0], [-1.0, -0.6, 1.0], rtol=1e-6)
    for sequence in ("rows", "columns", "pixels", "permuted"):
        got = data.to_sequences(images, sequence, normalize="symmetric")
        np.testing.assert_allclose(got, 2 * data.to_sequences(images, sequence) - 1, atol=1e-6)
    loaded = data.load(train_examples=8, test_examples=8, normalize="symmetric", pipelines=False)
    assert loaded.x_train.min() == -1.0 and loaded.x_test.max() == 1.0


def test_bad_sequence_name_or_images_are_data_errors(images):
    with pytest.raises(DataError, match="rows.*columns.*pixels.*permuted"):
        data.to_sequences(images, "diagonal")
    with pytest.raises(DataError, match="unit.*symmetric"):
        data.to_sequences(images, normalize="minmax")
    with pytest.raises(DataError, match="uint8"):
        data.to_sequences(images.astype(np.float32))


# ---- tf.data pipelines ------------------------------------------------------


def batches(ds):
    return [y.tolist() for _, y in ds.as_numpy_iterator()]


def test_make_dataset_seeded_reshuffle():
    x, y = np.zeros((64, 3, 2), np.float32), np.arange(64)
    ds = data.make_dataset(x, y, 16, shuffle=True, seed=7)
    epoch1, epoch2 = batches(ds), batches(ds)
    assert epoch1 == batches(data.make_dataset(x, y, 16, shuffle=True, seed=7))
    assert epoch1 != epoch2  # reshuffled each epoch
    assert epoch1[0] != batches(data.make_dataset(x, y, 16, shuffle=True, seed=8))[0]
    assert sorted(sum(epoch1, [])) == list(range(64))  # a permutation of all
    assert sum(epoch1, []) != list(range(64))


def test_make_dataset_unshuffled_batching_and_options():
    x, y = np.zeros((10, 3, 2), np.float32), np.arange(10)
    ds = data.make_dataset(x, y, 4, shuffle=False)
    assert batches(ds) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert ds.options().autotune.enabled is False
    dropped = data.make_dataset(x, y, 4, shuffle=False, drop_remainder=True)
    assert batches(dropped) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    repeated = data.make_dataset(x, y, 4, shuffle=False, repeat=True)
    assert [b.tolist() for _, b in repeated.take(4).as_numpy_iterator()][3] == [
        2,
        3,
        4,
        5,
    ]


@pytest.mark.parametrize("batch_size", [0, -1])
def test_make_dataset_rejects_bad_batch_size(batch_size):
    with pytest.raises(DataError, match="batch_size must be > 0"):
        data.make_dataset(np.zeros((4, 1, 1)), np.zeros(4), batch_size, shuffle=False)


def test_load_builds_sequences_and_pipelines():
    d = data.load("mnist", "rows", batch_size=32, train_examples=96, test_examples=40)
    assert (d.time_steps, d.features, d.num_classes, d.name) == (28, 28, 10, "mnist")
    assert d.x_train.shape == (96, 28, 28) and d.x_test.shape == (40, 28, 28)
    assert d.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert [len(b) for b in batches(d.test)] == [32, 8]
    assert batches(d.test)[0] == d.y_test[:32].tolist()
    train = batches(d.train)
    assert sorted(sum(train, [])) == sorted(d.y_train.tolist())
    assert sum(train, []) != d.y_train.tolist()  # shuffled


def test_load_without_pipelines_has_the_same_arrays():
    kwargs = dict(batch_size=32, train_examples=96, test_examples=40)
    full = data.load("mnist", "pixels", **kwargs)
    bare = data.load("mnist", "pixels", **kwargs, pipelines=False)
    assert bare.train is None and bare.test is None
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(bare, name), getattr(full, name))
    assert bare[6:] == full[6:] == (784, 1, 10, "mnist", (28, 28))  # time_steps ...


@pytest.mark.parametrize(
    "kwargs", [{"train_examples": 0}, {"test_examples": -5}, {"test_examples": 10001}]
)
def test_load_rejects_bad_example_counts(kwargs):
    with pytest.raises(DataError, match="examples must be in 1.."):
        data.load("mnist", **kwargs)


# ---- Fashion-MNIST ----------------------------------------------------------

def needs_fashion(test):
    """Marks `test` optional_data; it skips without the Fashion-MNIST files."""
    skip = pytest.mark.skipif(
        not data.fashion_mnist_available(),
        reason=f"Fashion-MNIST not in {data.FASHION_MNIST_DIR} (apt-get install "
        "dataset-fashion-mnist, or set TFRNN_FASHION_MNIST_DIR)",
    )
    return pytest.mark.optional_data(skip(test))


@needs_fashion
def test_fashion_mnist_loads():
    a = data.load_arrays("fashion_mnist")
    assert a.name == "fashion_mnist" and a.num_classes == 10
    assert a.x_train.shape == (60000, 28, 28) and a.x_test.shape == (10000, 28, 28)
    assert a.y_train[:5].tolist() == [9, 0, 0, 3, 0]
    assert np.bincount(a.y_train).tolist() == [6000] * 10
    assert np.bincount(a.y_test).tolist() == [1000] * 10


@needs_fashion
def test_fashion_mnist_checksum_failure_says_how_to_reinstall(tmp_path):
    for p in data.FASHION_MNIST_DIR.glob("*.gz"):
        shutil.copy(p, tmp_path / p.name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # a valid file with one wrong label
    write_gz(labels, bytes(raw))
    with pytest.raises(DataError) as e:
        data.load_arrays("fashion_mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg
    assert data.FASHION_MNIST_MD5["t10k-labels-idx1-ubyte.gz"] in msg
    assert hashlib.md5(raw).hexdigest() in msg
    assert "apt-get install --reinstall dataset-fashion-mnist" in msg


def test_fashion_mnist_missing_dir(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_arrays("fashion_mnist", data_dir=tmp_path / "nope")


# ---- TFDS (offline) ---------------------------------------------------------


def test_tfds_mock_data_loads_offline(tmp_path, no_network):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        a = data.load_arrays("tfds:mnist", data_dir=tmp_path)
    assert a.name == "tfds:mnist" and a.num_classes == 10
    assert a.x_train.shape == (6, 28, 28) and a.x_test.shape == (6, 28, 28)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert ((0 <= a.y_train) & (a.y_train < 10)).all()
    assert data.to_sequences(a.x_train, "pixels").shape == (6, 784, 1)


def test_tfds_unprepared_dataset_is_a_data_error(tmp_path, no_network):
    with pytest.raises(DataError, match="(?s)download is disabled.*tfds build mnist"):
        data.load_arrays("tfds:mnist", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or written
    with pytest.raises(DataError, match="no_such_dataset_xyz"):
        data.load_arrays("tfds:no_such_dataset_xyz", data_dir=tmp_path)


# ---- names ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "MNIST", "tfds:", ""])
def test_unknown_dataset_lists_choices(name):
    with pytest.raises(DataError, match="mnist.*fashion_mnist.*tfds:NAME"):
        data.load_arrays(name)
