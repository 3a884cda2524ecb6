"""XLM tokenizers built from files: a released fastBPE codes/vocab pair converted to transformers' layout
(convert_fastbpe), and a new vocabulary learned on a corpus with XLM's own preprocessing (learn_bpe).

Here rather than in bpe.py so that bpe.py (merges and vocabulary files) never imports the tokenizer
that uses it.
"""

from __future__ import annotations

import collections
from pathlib import Path

from .bpe import BPE, END, SPECIAL_TOKENS, learn_merges, read_fastbpe_vocab, read_merges, read_text
from .moses import lowercase_and_remove_accent
from .xlm import XLMTokenizer


def convert_fastbpe(codes_file, vocab_file, out_dir, *, max_vocab: int | None = None, lang2id=None,
                    do_lowercase_and_remove_accent: bool = True, use_lang_emb: bool | None = None) -> Path:
    """Write a released XLM codes/vocab pair as vocab.json + merges.txt + tokenizer_config.json, a
    folder that both `xlmlib.Tokenizer.from_pretrained` and transformers' XLMTokenizer load."""
    tok = XLMTokenizer(read_fastbpe_vocab(vocab_file, max_vocab), read_merges(codes_file), lang2id=lang2id,
                       use_lang_emb=use_lang_emb, do_lowercase_and_remove_accent=do_lowercase_and_remove_accent)
    return tok.save_pretrained(out_dir)


def learn_bpe(corpus_files, n_merges: int, out_dir=None, *, lang: str = "en", lowercase: bool = True,
              lang2id: dict[str, int] | None = None):
    """Learn `n_merges` merges on text files (one sentence per line) after XLM's own preprocessing
    (Moses pipeline for `lang`, then lowercasing + accent stripping when `lowercase`), and build the
    vocabulary from the segmented corpus: the 14 XLM specials, then pieces by descending frequency,
    then every character in both its word-final and its continuing form, so that no character of
    the corpus becomes <unk>. Returns an XLMTokenizer; with `out_dir` it is also saved there as
    vocab.json + merges.txt + tokenizer_config.json, which transformers' XLMTokenizer loads too."""
    if isinstance(corpus_files, (str, Path)):
        corpus_files = [corpus_files]
    probe = XLMTokenizer({t: i for i, t in enumerate(SPECIAL_TOKENS)}, [], do_lowercase_and_remove_accent=lowercase)
    counts: collections.Counter = collections.Counter()
    for path in corpus_files:
        for line in read_text(Path(path)).split("\n"):
            for token in probe.pre_tokenize(line, lang) if line.strip() else ():
                counts.update(w for w in (lowercase_and_remove_accent(token) if lowercase else token).split(" ") if w)
    merges = learn_merges(dict(counts), n_merges)
    bpe = BPE(merges)
    piece_counts: collections.Counter = collections.Counter()
    for word, count in counts.items():
        for piece in bpe.segment(word):
            piece_counts[piece] += count
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for piece, _ in sorted(piece_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(piece, len(vocab))
    for char in sorted({c for word in counts for c in word}):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + END, len(vocab))
    tok = XLMTokenizer(vocab, merges, lang2id=lang2id, do_lowercase_and_remove_accent=lowercase, default_lang=lang)
    if out_dir is not None:
        tok.save_pretrained(out_dir)
    return tok
