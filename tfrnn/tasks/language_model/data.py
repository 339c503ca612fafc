"""Text -> character ids -> parallel streams -> chunks of truncated BPTT.

    >>> text = encode("abcabcab", vocabulary_of("abc"))
    >>> text
    array([1, 2, 3, 1, 2, 3, 1, 2], dtype=int32)
    >>> streams(text, 2)            # 2 contiguous streams of 4 characters
    array([[1, 2, 3, 1],
           [2, 3, 1, 2]], dtype=int32)
    >>> chunks_per_stream(4, bptt=2)  # inputs [0:2] -> targets [1:3]; [2:4] has no target for 4
    1

Each training step reads the next `bptt` characters of every stream (the
inputs) and the same shifted by one (the targets); the state a stream ends a
chunk with is the state it starts the next one with.
"""

import hashlib
import pathlib
import platform
import sysconfig
from typing import NamedTuple

import numpy as np

from tfrnn.training.errors import DataError

UNKNOWN = "\N{REPLACEMENT CHARACTER}"  # id 0: characters unseen in training
HELD_OUT = 0.1  # the last tenth of the text
STDLIB_BYTES = 1_500_000  # the default text: the first stdlib modules, sorted, to this size


class Text(NamedTuple):
    train: np.ndarray  # int32 ids
    test: np.ndarray  # int32 ids (unseen characters: 0)
    vocabulary: tuple  # the character of each id; vocabulary[0] is UNKNOWN
    source: str  # the file, or "python X.Y.Z standard library (N modules)"
    sha256: str  # of the text's UTF-8 bytes


def read_text(path):
    """The text of the UTF-8 file `path`; `DataError` saying what is wrong."""
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"--text={path}: no such file") from None
    except OSError as error:
        raise DataError(f"--text={path} cannot be read ({error.strerror})") from None
    if not raw.strip():
        raise DataError(f"--text={path} is empty: give a text of some thousands of characters")
    if b"\x00" in raw:
        raise DataError(f"--text={path} holds NUL bytes: a binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"--text={path} is not UTF-8 (byte {error.start}): convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path}`"
        ) from None


def stdlib_text(size=STDLIB_BYTES):
    """Python source from the running interpreter's standard library: its
    top-level modules in sorted order, whole, until `size` bytes; returns
    `(text, source)`."""
    directory = pathlib.Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(directory.glob("*.py")):
        if total >= size:
            break
        part = path.read_text(encoding="utf-8", errors="replace")
        parts.append(part)
        total += len(part.encode())
    if not parts:
        raise DataError(f"no Python modules in {directory}: pass --text=FILE")
    source = f"python {platform.python_version()} standard library ({len(parts)} modules)"
    return "".join(parts), source


def vocabulary_of(text):
    """`(UNKNOWN, *sorted characters of text)`."""
    return (UNKNOWN, *sorted(set(text) - {UNKNOWN}))


def encode(text, vocabulary):
    """int32 ids of `text` (0 for a character not in `vocabulary`)."""
    ids = {character: i for i, character in enumerate(vocabulary)}
    return np.fromiter((ids.get(c, 0) for c in text), np.int32, len(text))


def load(path=None):
    """The text of `path` (None: `stdlib_text`), split into training and
    held-out ids, with its vocabulary (of the training part)."""
    if path is None:
        text, source = stdlib_text()
    else:
        text, source = read_text(path), str(path)
    split = int(len(text) * (1 - HELD_OUT))
    vocabulary = vocabulary_of(text[:split])
    return Text(
        train=encode(text[:split], vocabulary),
        test=encode(text[split:], vocabulary),
        vocabulary=vocabulary,
        source=source,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def streams(ids, count):
    """`ids` cut into `count` contiguous streams `[count, len(ids) // count]`
    (the remainder dropped)."""
    length = len(ids) // count
    return np.asarray(ids[: count * length]).reshape(count, length)


def chunks_per_stream(length, bptt):
    """Full chunks of `bptt` inputs, each with its `bptt` targets, in a stream
    of `length` characters."""
    return (length - 1) // bptt
