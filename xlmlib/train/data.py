"""Pretraining corpora: text readers, a binarized memory-mapped format, token-window streams, parallel pairs.

Empty lines: a line that is empty or only whitespace never becomes a training example. The text readers
skip it (read_parallel skips the pair when either side is empty); `binarize` keeps its slot as a
zero-length sentence so that sentence i is line i and two binarized sides of a parallel corpus stay
aligned; TokenWindows and ParallelCorpus then skip zero-length sentences.

Binarized layout for a prefix P: P.ids.bin (token ids, uint16 when the vocabulary fits, else int32),
P.offsets.bin (int64, n_sentences + 1 entries: sentence i is ids[offsets[i]:offsets[i+1]]) and
P.json (the header). Ids are stored without framing; the objectives add </s>, <s> and the like.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

FORMAT_NAME = "xlmlib-binarized"
FORMAT_VERSION = 1
_DTYPES = ("uint16", "int32")


def read_lines(path: str | os.PathLike) -> Iterator[str]:
    """Every line of a UTF-8 file without its line ending, empty ones included.

    Only "\\n" ends a line (a trailing "\\r" is dropped), so U+2028 and lone "\\r" inside a sentence do
    not split it and line numbers agree with `wc -l`, which is what line-aligned parallel files mean.
    """
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            yield line.rstrip("\n").rstrip("\r")


def read_monolingual(path: str | os.PathLike) -> Iterator[str]:
    """One sentence per line; empty and whitespace-only lines are skipped."""
    return (line for line in read_lines(path) if line.strip())


def read_parallel(src: str | os.PathLike, tgt: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """Aligned (src, tgt) lines; a pair with an empty side is skipped; unequal line counts fail."""
    n = 0
    for n, (a, b) in enumerate(zip_longest(read_lines(src), read_lines(tgt)), start=1):
        if a is None or b is None:
            longer, shorter = (tgt, src) if a is None else (src, tgt)
            raise ValueError(f"parallel files are not line-aligned: {shorter} ends after {n - 1} lines "
                             f"but {longer} goes on (pair {src} / {tgt})")
        if a.strip() and b.strip():
            yield a, b


def _paths(prefix: str | os.PathLike) -> dict[str, Path]:
    prefix = str(prefix)
    return {"ids": Path(prefix + ".ids.bin"), "offsets": Path(prefix + ".offsets.bin"),
            "header": Path(prefix + ".json")}


def _dtype_for(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 2**16 else "int32"


def _encode_all(lines, encode_fn, vocab_size, ids_file) -> array:
    """Write each line's ids to ids_file; return the offsets (int64) of every sentence."""
    dtype = np.dtype(_dtype_for(vocab_size))
    offsets = array("q", [0])
    for number, line in enumerate(lines, start=1):
        ids = np.asarray(encode_fn(line) if line.strip() else [], dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"line {number}: encode_fn gave ids outside [0, {vocab_size}): "
                             f"min {ids.min()}, max {ids.max()}")
        ids_file.write(ids.astype(dtype).tobytes())
        offsets.append(offsets[-1] + ids.size)
    return offsets


def binarize(
    source: str | os.PathLike | Iterable[str],
    encode_fn: Callable[[str], Sequence[int]],
    out_prefix: str | os.PathLike,
    *,
    vocab_size: int,
) -> dict:
    """Encode every line of `source` (a file, or an iterable of lines) into the binarized format.

    encode_fn maps a sentence to ids without framing. Written to temporary files in the target folder,
    then moved into place with os.replace, header last, so a crash never leaves a header that describes
    half-written data (MemmapCorpus also checks the sizes against the header). Returns the header.
    """
    paths = _paths(out_prefix)
    folder = paths["header"].parent
    folder.mkdir(parents=True, exist_ok=True)
    lines = read_lines(source) if isinstance(source, (str, os.PathLike)) else source
    temps = {}
    try:
        for key in ("ids", "offsets", "header"):
            fd, temps[key] = tempfile.mkstemp(dir=folder, prefix=paths[key].name + ".", suffix=".tmp")
            os.close(fd)
        with open(temps["ids"], "wb") as f:
            offsets = _encode_all(lines, encode_fn, vocab_size, f)
        np.frombuffer(offsets, dtype=np.int64).tofile(temps["offsets"])
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "dtype": _dtype_for(vocab_size),
                  "vocab_size": vocab_size, "n_sentences": len(offsets) - 1, "n_tokens": offsets[-1]}
        Path(temps["header"]).write_text(json.dumps(header, indent=1) + "\n", encoding="utf-8")
        for key in ("ids", "offsets", "header"):
            os.replace(temps.pop(key), paths[key])
    finally:
        for leftover in temps.values():
            Path(leftover).unlink(missing_ok=True)
    logger.info("binarized %d sentences, %d tokens to %s", header["n_sentences"], header["n_tokens"], out_prefix)
    return header


def _read_header(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"binarized corpus header missing: {path}")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid header ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not an {FORMAT_NAME} header")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {header.get('version')!r}, this xlmlib reads {FORMAT_VERSION}")
    if header.get("dtype") not in _DTYPES:
        raise ValueError(f"{path}: dtype {header.get('dtype')!r} is not one of {_DTYPES}")
    return header


def _open_array(path: Path, dtype, length: int) -> np.ndarray:
    """Memory-map `length` items of `dtype` from path, failing with the file's name when it does not fit."""
    if not path.is_file():
        raise FileNotFoundError(f"binarized corpus file missing: {path}")
    expected = length * np.dtype(dtype).itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, but its header implies {expected}")
    if length == 0:  # np.memmap cannot map an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(length,))


class MemmapCorpus:
    """A binarized corpus opened with np.memmap, so it streams from disk however large it is."""

    def __init__(self, prefix: str | os.PathLike):
        self.paths = _paths(prefix)
        self.header = _read_header(self.paths["header"])
        n = self.header["n_sentences"]
        self.offsets = _open_array(self.paths["offsets"], np.int64, n + 1)
        self.ids = _open_array(self.paths["ids"], self.header["dtype"], self.header["n_tokens"])
        if self.offsets[0] != 0 or self.offsets[-1] != self.header["n_tokens"]:
            raise ValueError(f"{self.paths['offsets']}: offsets span [{self.offsets[0]}, {self.offsets[-1]}], "
                             f"header says {self.header['n_tokens']} tokens")
        self.lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sentence {i} out of range for {len(self)} sentences")
        i %= len(self)
        return np.asarray(self.ids[self.offsets[i] : self.offsets[i + 1]], dtype=np.int64)


class EpochOrder:
    """Which items make up batch `step`: epoch e's order is a permutation seeded by (seed, e).

    A pure function of (seed, step), so a resumed run gets the same batches without saved state. The
    last item_count % batch_size items of each epoch's order are not used in that epoch.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, shuffle: bool, *, repeat: bool = False):
        if n_items < 1 or batch_size < 1 or (n_items < batch_size and not repeat):
            raise ValueError(f"{n_items} items cannot fill one batch of {batch_size}")
        self.n_items, self.batch_size, self.seed, self.shuffle = n_items, batch_size, seed, shuffle
        # repeat: a corpus smaller than one batch is seen several times per "epoch" (each pass in its own order),
        # so a small language can still be mixed with large ones.
        self.passes = -(-batch_size // n_items)
        self.batches_per_epoch = self.passes * n_items // batch_size
        self._cached: tuple[int, np.ndarray] | None = None  # one epoch's permutation, reused step to step

    def __call__(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.batches_per_epoch)
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng((self.seed, epoch))
            orders = [rng.permutation(self.n_items) if self.shuffle else np.arange(self.n_items)
                      for _ in range(self.passes)]
            self._cached = (epoch, np.concatenate(orders))
        return self._cached[1][i * self.batch_size : (i + 1) * self.batch_size]


class TokenWindows:
    """Fixed-length token windows over one corpus, as XLM's bptt streams (formats.md §5).

    The stream is `</s> s1 </s> s2 </s> …` (a leading separator and one after every non-empty sentence,
    XLM xlm/data/dataset.py StreamDataset), cut into consecutive windows of seq_len; the tail shorter
    than a window is dropped, as XLM does. It is never built in memory: a window is gathered from the
    memory map on demand. Unlike XLM, which lays the stream out as batch_size parallel columns, every
    window is an independent item, so `batch(step)` is batch_size windows in an epoch order that is a
    pure function of (seed, step): resuming at step k replays exactly what an unbroken run sees there.
    A data-parallel trainer takes rows rank::world_size of the global batch.
    """

    def __init__(self, corpus: MemmapCorpus, *, seq_len: int, eos_id: int, batch_size: int,
                 seed: int = 0, shuffle: bool = True, repeat: bool = False):
        self.corpus, self.seq_len, self.eos_id = corpus, seq_len, eos_id
        kept = np.flatnonzero(corpus.lengths > 0)
        self._first_id = corpus.offsets[kept]  # where each kept sentence starts in corpus.ids
        self._lens = corpus.lengths[kept]
        # Stream position of each kept sentence's first token: after the leading </s> and the
        # sentences (plus their </s>) before it.
        self._starts = 1 + np.concatenate([[0], np.cumsum(self._lens + 1)[:-1]]).astype(np.int64)
        self.stream_len = 1 + int((self._lens + 1).sum())
        self.n_windows = self.stream_len // seq_len
        if self.n_windows < (1 if repeat else batch_size):
            raise ValueError(f"{corpus.paths['ids']}: a stream of {self.stream_len} tokens gives "
                             f"{self.n_windows} windows of {seq_len}, fewer than one batch of {batch_size}")
        self._order = EpochOrder(self.n_windows, batch_size, seed, shuffle, repeat=repeat)
        self.batches_per_epoch = self._order.batches_per_epoch

    def stream(self, start: int, stop: int) -> np.ndarray:
        """Stream tokens [start, stop) as int64."""
        pos = np.arange(start, stop, dtype=np.int64)
        sent = np.searchsorted(self._starts, pos, side="right") - 1
        safe = np.maximum(sent, 0)
        rel = pos - self._starts[safe]
        inside = (sent >= 0) & (rel < self._lens[safe])
        out = np.full(len(pos), self.eos_id, dtype=np.int64)
        out[inside] = self.corpus.ids[self._first_id[sent[inside]] + rel[inside]]
        return out

    def window(self, k: int) -> np.ndarray:
        return self.stream(k * self.seq_len, (k + 1) * self.seq_len)

    def batch(self, step: int) -> torch.Tensor:
        """(batch_size, seq_len) long: the windows of global step `step` (epochs follow one another)."""
        return torch.from_numpy(np.stack([self.window(int(k)) for k in self._order(step)]))

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iterate(0)

    def iterate(self, start_step: int = 0) -> Iterator[torch.Tensor]:
        """Batches from start_step on, without end."""
        step = start_step
        while True:
            yield self.batch(step)
            step += 1


class ParallelCorpus:
    """Two line-aligned binarized corpora (e.g. the en and fr sides) read as (ids1, ids2) pairs for TLM.

    Pairs where either side is empty are skipped, as read_parallel does; index i counts usable pairs.
    """

    def __init__(self, prefix1: str | os.PathLike, prefix2: str | os.PathLike, *, repeat: bool = False):
        self.side1, self.side2 = MemmapCorpus(prefix1), MemmapCorpus(prefix2)
        if len(self.side1) != len(self.side2):
            raise ValueError(f"parallel corpora are not aligned: {self.side1.paths['ids']} has "
                             f"{len(self.side1)} sentences, {self.side2.paths['ids']} has {len(self.side2)}")
        self._usable = np.flatnonzero((self.side1.lengths > 0) & (self.side2.lengths > 0))
        self._orders: dict[tuple, EpochOrder] = {}
        self.repeat = repeat  # fewer pairs than one batch: see them several times per batch

    def __len__(self) -> int:
        return len(self._usable)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        line = int(self._usable[i])
        return self.side1[line], self.side2[line]

    def batch(self, step: int, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> list:
        """The pairs of global step `step`, a pure function of (seed, step); feed them to tlm_batch."""
        key = (batch_size, seed, shuffle)
        if key not in self._orders:
            self._orders[key] = EpochOrder(len(self), batch_size, seed, shuffle, repeat=self.repeat)
        return [self[int(i)] for i in self._orders[key](step)]
