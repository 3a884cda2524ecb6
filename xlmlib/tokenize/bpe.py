"""Byte-pair encoding as XLM uses it: merges with a "</w>" end-of-word marker, the released fastBPE files
and transformers' vocab.json + merges.txt, and merge learning. It knows no tokenizer: learn.py builds
XLMTokenizers from these pieces (convert_fastbpe, learn_bpe).

Conventions (formats.md sections 2 and 5, the XLM Dictionary and transformers' XLM conversion script):
- fastBPE `codes_*`: one merge per line, `left right count`; the line index is the merge rank.
- fastBPE `vocab_*`: `token count` per line; "@@" ends a piece that continues the word. The XLM
  Dictionary puts <s>=0, </s>=1, <pad>=2, <unk>=3, <special0..9>=4..13 first, then the file's lines
  (a line holding U+2028, one that does not split() into a token and a digit count, or a repeated
  token is skipped: XLM xlm/data/dictionary.py read_vocab);
  `max_vocab` keeps ids below it.
- transformers' vocab.json: the same ids; a piece with "@@" loses it, every other non-special piece
  gets "</w>" (a word-final piece). merges.txt: `left right` per line, no header.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import json
from pathlib import Path

from ..atomic import write_bytes as atomic_write

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
END = "</w>"


class BPE:
    """Applies merges to one word, the way transformers' XLMTokenizer.bpe does (lowest rank first,
    every occurrence of that pair merged left to right, until no ranked pair is left)."""

    def __init__(self, merges: list[tuple[str, str]]):
        self.merges = list(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}

    def segment(self, word: str) -> list[str]:
        symbols = list(word[:-1]) + [word[-1] + END]
        ranks = self.ranks
        while len(symbols) > 1:
            best, best_rank = None, None
            for pair in itertools.pairwise(symbols):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            symbols = _merge(symbols, best)
        return symbols


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    first, second = pair
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == first and symbols[i + 1] == second:
            out.append(first + second)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


# -- reading and writing ----------------------------------------------------------------------
def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"missing BPE file: {path}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"corrupt BPE file {path} (not UTF-8): {err}") from None


def read_merges(path: Path) -> list[tuple[str, str]]:
    """merges.txt or a fastBPE codes file: the first two fields of each non-empty line.

    Fields are split on the ASCII space, not on any whitespace: codes_xnli_15 has merges of U+00A0
    ("\xa0 \xa0 7830") that str.split() would take apart. (Moses turns U+00A0 into a space, so these
    merges never fire; keeping them keeps every other line's rank.)
    """
    merges = []
    for number, line in enumerate(read_text(path).split("\n"), 1):
        if not line.strip() or line.startswith("#version"):
            continue
        fields = line.rstrip("\r").split(" ")
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise ValueError(f"corrupt merges file {path}, line {number}: {line!r}")
        merges.append((fields[0], fields[1]))
    return merges


def read_vocab_json(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt vocabulary file {path}: {err}") from None
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise ValueError(f"corrupt vocabulary file {path}: expected a JSON object of token -> id")
    return vocab


def read_fastbpe_vocab(path: Path, max_vocab: int | None = None) -> dict[str, int]:
    """A released `vocab_*` file as transformers' vocab.json mapping (see the module docstring)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    seen, next_id = set(SPECIAL_TOKENS), len(SPECIAL_TOKENS)
    for line in read_text(path).split("\n"):
        fields = line.rstrip().split()
        # Whitespace tokens such as "\xa0" split into one field and are skipped, as in XLM.
        if "\u2028" in line or len(fields) != 2 or not fields[1].isdigit() or fields[0] in seen:
            continue
        if max_vocab is not None and next_id >= max_vocab:
            break
        word = fields[0]
        seen.add(word)
        # Two words can share a vocab.json key (a bare "@@" becomes ""); as in transformers'
        # conversion (a dict built in id order) the later id wins, and ids stay the Dictionary's.
        vocab[word.replace("@@", "") if "@@" in word else word + END] = next_id
        next_id += 1
    return vocab


def write_vocab_and_merges(directory: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    directory = Path(directory)
    ordered = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    atomic_write(directory / "vocab.json", (json.dumps(ordered, ensure_ascii=False, indent=0) + "\n").encode())
    atomic_write(directory / "merges.txt", "".join(f"{a} {b}\n" for a, b in merges).encode("utf-8"))


# -- learning ---------------------------------------------------------------------------------
def learn_merges(word_counts: dict[str, int], n_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE learning (Sennrich et al. 2016, as fastBPE learnbpe): repeatedly merge the most
    frequent adjacent pair (ties: the smallest pair in string order, so results are deterministic)."""
    words = [list(w[:-1]) + [w[-1] + END] for w in word_counts if w]
    counts = [word_counts[w] for w in word_counts if w]
    pair_counts: collections.Counter = collections.Counter()
    where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for k, symbols in enumerate(words):
        for pair in itertools.pairwise(symbols):
            pair_counts[pair] += counts[k]
            where[pair].add(k)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < n_merges:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg or -neg <= 0:
            continue  # a stale heap entry; the current count was pushed again when it changed
        merges.append(pair)
        changed: set[tuple[str, str]] = set()
        for k in list(where.pop(pair, ())):
            _retally(words, counts, k, pair, pair_counts, where, changed)
        for p in changed:
            if pair_counts.get(p, 0) > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
    return merges


def _retally(words, counts, k, pair, pair_counts, where, changed) -> None:
    old = words[k]
    for p in itertools.pairwise(old):
        pair_counts[p] -= counts[k]
        changed.add(p)
    new = _merge(old, pair)
    words[k] = new
    for p in itertools.pairwise(new):
        pair_counts[p] += counts[k]
        where[p].add(k)
        changed.add(p)
    pair_counts.pop(pair, None)
