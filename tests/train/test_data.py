"""Corpora: text readers, binarize -> MemmapCorpus round trip, token windows, resume, parallel pairs, errors.

The encode function is a whitespace split plus a dict lookup built in each test, so every expected id
below is derivable by hand from the test's own sentences.
"""

import json

import numpy as np
import pytest
import torch

from xlmlib.family import Framing
from xlmlib.objectives import tlm_batch
from xlmlib.train.data import (
    MemmapCorpus,
    ParallelCorpus,
    TokenWindows,
    binarize,
    read_lines,
    read_monolingual,
    read_parallel,
)

EOS = 1


def _vocab_encoder(sentences, first_id=14):
    """Whitespace tokens numbered in order of first appearance from first_id (past XLM's specials)."""
    vocab = {}
    for s in sentences:
        for w in s.split():
            vocab.setdefault(w, first_id + len(vocab))
    return lambda line: [vocab[w] for w in line.split()]


def _write(path, lines, end="\n"):
    path.write_text("".join(line + end for line in lines), encoding="utf-8")
    return path


def _corpus(tmp_path, n=50, name="mono"):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(n)]
    lines[7] = ""  # an empty line keeps its slot in the binarized file
    encode = _vocab_encoder(lines)
    header = binarize(_write(tmp_path / f"{name}.txt", lines), encode, tmp_path / name, vocab_size=100)
    return lines, encode, header, MemmapCorpus(tmp_path / name)


def test_readers_skip_empty_lines_and_keep_line_numbers(tmp_path):
    path = _write(tmp_path / "a.txt", ["one", "", "  ", "two\u2028three", "four\r"], end="\n")
    assert list(read_lines(path)) == ["one", "", "  ", "two\u2028three", "four"]
    assert list(read_monolingual(path)) == ["one", "two\u2028three", "four"]
    other = _write(tmp_path / "b.txt", ["un", "deux", "", "trois", "quatre"])
    assert list(read_parallel(path, other)) == [("one", "un"), ("two\u2028three", "trois"), ("four", "quatre")]


def test_parallel_reader_names_both_files_when_counts_differ(tmp_path):
    a = _write(tmp_path / "x.en", ["a", "b", "c"])
    b = _write(tmp_path / "x.fr", ["a", "b"])
    with pytest.raises(ValueError, match=r"x\.fr ends after 2 lines.*x\.en"):
        list(read_parallel(a, b))


def test_binarize_memmap_round_trip(tmp_path):
    lines, encode, header, corpus = _corpus(tmp_path)
    assert header["dtype"] == "uint16" and header["version"] == 1
    assert header["n_sentences"] == len(lines) == len(corpus)
    assert header["n_tokens"] == sum(len(line.split()) for line in lines)
    assert isinstance(corpus.ids, np.memmap)
    for i, line in enumerate(lines):
        assert corpus[i].tolist() == encode(line)
    assert corpus[7].size == 0 and corpus[-1].tolist() == encode(lines[-1])
    assert not list(tmp_path.glob("*.tmp"))  # temporary files were moved into place


def test_large_vocabularies_use_int32(tmp_path):
    header = binarize(["a b"], lambda s: [250_001, 7], tmp_path / "big", vocab_size=250_002)
    assert header["dtype"] == "int32"
    assert MemmapCorpus(tmp_path / "big")[0].tolist() == [250_001, 7]
    with pytest.raises(ValueError, match="line 1: encode_fn gave ids outside"):
        binarize(["a"], lambda s: [70_000], tmp_path / "bad", vocab_size=100)
    assert not (tmp_path / "bad.json").exists()  # a failed run leaves nothing behind


@pytest.mark.parametrize("piece", ["ids.bin", "offsets.bin", "json"])
def test_missing_piece_is_named(tmp_path, piece):
    _corpus(tmp_path)
    (tmp_path / f"mono.{piece}").unlink()
    with pytest.raises(FileNotFoundError, match=rf"mono\.{piece.replace('.', '[.]')}"):
        MemmapCorpus(tmp_path / "mono")


def test_corrupt_files_are_named(tmp_path):
    _corpus(tmp_path)
    header_path = tmp_path / "mono.json"
    header = json.loads(header_path.read_text())
    with open(tmp_path / "mono.ids.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(ValueError, match=r"mono\.ids\.bin: .* bytes, but its header implies"):
        MemmapCorpus(tmp_path / "mono")
    for change, message in [({"version": 2}, "format version 2"), ({"dtype": "float32"}, "dtype 'float32'")]:
        header_path.write_text(json.dumps({**header, **change}))
        with pytest.raises(ValueError, match=rf"mono\.json: {message}"):
            MemmapCorpus(tmp_path / "mono")
    header_path.write_text("{not json")
    with pytest.raises(ValueError, match=r"mono\.json: not a valid header"):
        MemmapCorpus(tmp_path / "mono")


def test_windows_cover_the_stream_exactly(tmp_path):
    lines, encode, _, corpus = _corpus(tmp_path)
    expected = [EOS]
    for line in lines:
        if line:  # empty sentences add no separator
            expected += encode(line) + [EOS]
    windows = TokenWindows(corpus, seq_len=16, eos_id=EOS, batch_size=2, shuffle=False)
    assert windows.stream_len == len(expected)
    assert windows.n_windows == len(expected) // 16
    joined = np.concatenate([windows.window(k) for k in range(windows.n_windows)])
    assert joined.tolist() == expected[: windows.n_windows * 16]
    unshuffled = torch.cat([windows.batch(s) for s in range(windows.batches_per_epoch)]).flatten()
    assert unshuffled.tolist() == expected[: windows.batches_per_epoch * 32]


def test_shuffled_epochs_use_each_window_once_and_differ(tmp_path):
    *_, corpus = _corpus(tmp_path, n=200)
    windows = TokenWindows(corpus, seq_len=8, eos_id=EOS, batch_size=4, seed=3)
    per_epoch = windows.batches_per_epoch

    def epoch(e):
        return torch.cat([windows.batch(e * per_epoch + s) for s in range(per_epoch)])

    first, second = epoch(0), epoch(1)
    all_windows = {tuple(windows.window(k)) for k in range(windows.n_windows)}
    assert len({tuple(r.tolist()) for r in first}) == per_epoch * 4 <= len(all_windows)
    assert {tuple(r.tolist()) for r in first} <= all_windows
    assert not torch.equal(first, second)


def test_resume_from_a_step_gives_the_same_batches(tmp_path):
    *_, corpus = _corpus(tmp_path, n=120)

    def make():
        return TokenWindows(corpus, seq_len=8, eos_id=EOS, batch_size=3, seed=11)

    unbroken = make().iterate()
    reference = [next(unbroken) for _ in range(40)]  # crosses epoch boundaries
    assert make().batches_per_epoch < 40
    resumed = make().iterate(start_step=23)  # a fresh object, as after a restart
    assert all(torch.equal(next(resumed), reference[s]) for s in range(23, 40))
    other_seed = TokenWindows(corpus, seq_len=8, eos_id=EOS, batch_size=3, seed=12)
    assert not all(torch.equal(other_seed.batch(s), reference[s]) for s in range(5))


def test_too_small_corpus_is_reported(tmp_path):
    binarize(["a b"], lambda s: [20, 21], tmp_path / "tiny", vocab_size=100)
    with pytest.raises(ValueError, match=r"tiny\.ids\.bin.*fewer than one batch"):
        TokenWindows(MemmapCorpus(tmp_path / "tiny"), seq_len=8, eos_id=EOS, batch_size=1)


def test_parallel_corpus_pairs_skip_empty_sides_and_check_alignment(tmp_path):
    en = ["a b", "c", "", "d e f"]
    fr = ["x", "y z", "w", ""]
    encode = _vocab_encoder(en + fr)
    binarize(en, encode, tmp_path / "p.en", vocab_size=100)
    binarize(fr, encode, tmp_path / "p.fr", vocab_size=100)
    corpus = ParallelCorpus(tmp_path / "p.en", tmp_path / "p.fr")
    assert len(corpus) == 2
    assert [(a.tolist(), b.tolist()) for a, b in (corpus[0], corpus[1])] == [
        (encode("a b"), encode("x")), (encode("c"), encode("y z"))]
    assert sorted(len(a) for a, _ in corpus.batch(0, 2, seed=1)) == [1, 2]
    binarize(fr[:3], encode, tmp_path / "short.fr", vocab_size=100)
    with pytest.raises(ValueError, match=r"p\.en\.ids\.bin has 4 sentences, .*short\.fr\.ids\.bin has 3"):
        ParallelCorpus(tmp_path / "p.en", tmp_path / "short.fr")


def test_tatoeba_parallel_smoke(tmp_path, assets):
    src = assets / "tatoeba-laser-v1" / "tatoeba.fra-eng.fra"
    tgt = assets / "tatoeba-laser-v1" / "tatoeba.fra-eng.eng"
    pairs = list(read_parallel(src, tgt))
    assert len(pairs) == sum(1 for _ in read_lines(src)) == 1000  # no empty lines in this file (wc -l)
    encode = _vocab_encoder([s for pair in pairs for s in pair])
    binarize(src, encode, tmp_path / "tat.fr", vocab_size=60_000)
    binarize(tgt, encode, tmp_path / "tat.en", vocab_size=60_000)
    corpus = ParallelCorpus(tmp_path / "tat.fr", tmp_path / "tat.en")
    assert len(corpus) == 1000
    assert corpus[0][1].tolist() == encode(pairs[0][1])
    batch = tlm_batch(corpus.batch(0, 8, seed=0), framing=Framing(EOS, EOS, gap=1), lang1_id=0, lang2_id=1, pad_id=2)
    assert batch["input_ids"].shape[0] == 8
    assert (batch["input_ids"] == EOS).sum(1).eq(4).all()  # XLM's concat_batches check: 4 </s> per row
