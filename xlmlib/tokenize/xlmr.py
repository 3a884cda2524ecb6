"""XLM-R tokenizer: SentencePiece pieces with fairseq's dictionary ids.

fairseq's Dictionary puts <s>=0, <pad>=1, </s>=2, <unk>=3 first and then the lines of dict.txt, which
follow the SentencePiece vocabulary from its fourth piece on; so a SentencePiece id i >= 3 becomes
i + 1, SentencePiece's <unk> (0) becomes 3, and the masked-LM task appends <mask> after the last piece
(formats.md sections 3 and 4). Text is encoded by sentencepiece itself, the library fairseq trained
XLM-R with, so ids match it exactly.
"""

from __future__ import annotations

import re
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece
import torch

from ..atomic import write_bytes as atomic_write
from ..atomic import write_json
from ..family import XLM_R
from .base import (
    CONFIG_NAME,
    BaseTokenizer,
    configured_max_length,
    read_json,
)

SPM_FILE = "sentencepiece.bpe.model"
# A trimmed vocabulary (xlmlib.trim_vocab) keeps the original .model and lists here the SentencePiece ids it
# kept, in the order of their new ids (4, 5, ...); pieces not listed encode as <unk>.
KEPT_FILE = "kept_pieces.json"
MASK = "<mask>"
SPECIALS = {0: "<s>", 1: "<pad>", 2: "</s>", 3: "<unk>"}
# The SentencePiece ids of <unk>, <s>, </s> that the fairseq alignment above assumes.
_SPM_LAYOUT = ("<unk>", "<s>", "</s>")


class XLMRTokenizer(BaseTokenizer):
    """SentencePiece + fairseq ids. `<mask>` in the text is the mask token and, like transformers'
    XLMRobertaTokenizer (whose <mask> AddedToken has lstrip=True), it absorbs the whitespace before it."""

    bos_id, pad_id, eos_id, unk_id = 0, 1, 2, 3
    framing = XLM_R.tokenizer_framing(bos_id, eos_id)  # <s> A </s></s> B </s>
    special_split = re.compile(f"({re.escape(MASK)})")
    strip_before_special = True
    space_marker = "\u2581"
    # 514 position rows, ids start at pad + 1 = 2, so 512 tokens fit, specials included (formats.md 3).
    model_max_length = 512
    lang2id = None

    def __init__(self, model_file, *, model_max_length: int = 512, kept_pieces=None):
        path = Path(model_file)
        if not path.is_file():
            raise FileNotFoundError(f"missing SentencePiece model file: {path}")
        self._model_bytes = path.read_bytes()
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self._model_bytes)
        except (RuntimeError, OSError, TypeError) as err:
            raise ValueError(f"corrupt SentencePiece model file {path}: {err}") from None
        layout = tuple(self.sp.id_to_piece(i) for i in range(min(3, self.sp.get_piece_size())))
        if layout != _SPM_LAYOUT:
            raise ValueError(f"{path}: expected SentencePiece ids 0-2 to be {_SPM_LAYOUT}, found {layout}")
        self.model_file = path
        self.model_max_length = int(model_max_length)
        self._set_pieces(kept_pieces)

    def _set_pieces(self, kept_pieces) -> None:
        """Id tables: SentencePiece id -> model id and back. The full vocabulary keeps every piece from
        SentencePiece id 3 on (model id = spm id + 1, as fairseq's dict.txt does); a trimmed one a subset."""
        n = self.sp.get_piece_size()
        self.trimmed = kept_pieces is not None
        kept = np.arange(3, n) if kept_pieces is None else np.asarray(list(kept_pieces), dtype=np.int64)
        if kept.size and (kept.min() < 3 or kept.max() >= n or np.any(np.diff(kept) <= 0)):
            raise ValueError(f"kept pieces must be increasing SentencePiece ids in [3, {n}), "
                             f"got {kept.size} ids from {kept.min()} to {kept.max()}")
        self.kept_pieces = kept
        self._spm2model = np.full(n, self.unk_id, dtype=np.int64)
        self._spm2model[kept] = np.arange(4, 4 + kept.size)
        self.mask_id = 4 + kept.size
        self.vocab_size = self.mask_id + 1

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, src, **kwargs) -> XLMRTokenizer:
        src = Path(src)
        if src.is_file():
            return cls(src, **kwargs)
        config = read_json(src / CONFIG_NAME) if (src / CONFIG_NAME).is_file() else {}
        kwargs.setdefault("model_max_length", configured_max_length(config))
        if (src / KEPT_FILE).is_file():
            kwargs.setdefault("kept_pieces", read_json(src / KEPT_FILE)["kept_spm_ids"])
        return cls(src / SPM_FILE, **kwargs)

    def save_pretrained(self, directory) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / SPM_FILE, self._model_bytes)
        # transformers' class name and special tokens, so AutoTokenizer loads the folder too (ours reads both).
        # A trimmed vocabulary renumbers the pieces, which transformers' class cannot know: it keeps our name,
        # so AutoTokenizer refuses it instead of giving wrong ids.
        specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": MASK}
        name = "XLMRTokenizer" if self.trimmed else XLM_R.hf_tokenizer
        write_json(directory / CONFIG_NAME, {"tokenizer_class": name, "model_max_length": self.model_max_length,
                                             **specials})
        write_json(directory / "special_tokens_map.json", specials)
        if self.trimmed:
            write_json(directory / KEPT_FILE, {"kept_spm_ids": self.kept_pieces.tolist()})
        elif (directory / KEPT_FILE).is_file():
            (directory / KEPT_FILE).unlink()  # a full vocabulary saved over a trimmed one
        return directory

    def trimmed_to(self, keep_ids) -> XLMRTokenizer:
        """A tokenizer over the model ids `keep_ids` only (specials and <mask> always kept), renumbered in
        their order: the same SentencePiece model, pieces outside the set encode as <unk>."""
        pieces = sorted(int(i) for i in keep_ids if 4 <= int(i) < self.mask_id)
        return XLMRTokenizer(self.model_file, model_max_length=self.model_max_length,
                             kept_pieces=self.kept_pieces[np.asarray(pieces, dtype=np.int64) - 4])

    # -- ids ------------------------------------------------------------------------------------
    def _to_model_ids(self, spm_ids: list[int]) -> list[int]:
        return self._spm2model[spm_ids].tolist() if spm_ids else []

    def _encode_text(self, text: str, lang=None, with_offsets: bool = False):
        if not with_offsets:
            return self._to_model_ids(self.sp.encode(text)), None
        out = self.sp.encode_as_offset_mapping(text)
        spans = []
        for piece, (start, end) in zip(out["pieces"], out["offsets"]):
            if piece != "\u2581" and piece.startswith("\u2581"):
                # SentencePiece counts the space a "▁" stands for into the piece; report the word only.
                while start < end and text[start].isspace():
                    start += 1
            spans.append((start, end))
        return self._to_model_ids(out["ids"]), spans

    def _encode_flat(self, texts, langs):
        plain = [MASK not in t for t in texts]
        if all(plain):
            rows = self.sp.encode(texts)  # one C++ call over the batch, multi-threaded
        else:
            rows = [self.sp.encode(t) if p else None for t, p in zip(texts, plain)]
        lens = np.fromiter(map(len, (r if r is not None else () for r in rows)), dtype=np.int64, count=len(rows))
        flat = self._spm2model[np.fromiter(chain.from_iterable(r for r in rows if r is not None), dtype=np.int64)]
        if all(plain):
            return flat, lens
        # Texts with <mask> go through the slow path; splice their ids back in order.
        pieces, start = [], 0
        for k, r in enumerate(rows):
            if r is None:
                own = np.asarray(self._encode_one(texts[k])[0], dtype=np.int64)
                lens[k] = own.size
                pieces.append(own)
            else:
                pieces.append(flat[start:start + len(r)])
                start += len(r)
        return np.concatenate(pieces) if pieces else flat, lens

    # -- public helpers ------------------------------------------------------------------------
    def _tokens(self, text: str, lang=None) -> list[str]:
        ids, _ = self._encode_one(text)
        return [self.id_to_token(i) for i in ids]

    def _build_word_tables(self):
        """A piece starting with ▁ opens a word (the kept SentencePiece pieces hold model ids 4 .. mask - 1)."""
        starts = torch.zeros(self.vocab_size, dtype=torch.bool)
        starts[4:self.mask_id] = torch.tensor(
            [self.sp.id_to_piece(int(i)).startswith("\u2581") for i in self.kept_pieces], dtype=torch.bool)
        special = torch.zeros(self.vocab_size, dtype=torch.bool)
        special[list(SPECIALS) + [self.mask_id]] = True
        return special, starts, None

    def is_special_id(self, i: int) -> bool:
        return i in SPECIALS or i == self.mask_id

    def id_to_token(self, i: int) -> str:
        i = int(i)
        if i in SPECIALS:
            return SPECIALS[i]
        if i == self.mask_id:
            return MASK
        if not 0 <= i < self.vocab_size:
            raise IndexError(f"id {i} outside the vocabulary (size {self.vocab_size})")
        return self.sp.id_to_piece(int(self.kept_pieces[i - 4]))

    def token_to_id(self, token: str) -> int:
        for i, s in SPECIALS.items():
            if s == token:
                return i
        if token == MASK:
            return self.mask_id
        return int(self._spm2model[self.sp.piece_to_id(token)])

    def __repr__(self) -> str:
        return f"XLMRTokenizer({str(self.model_file)!r}, vocab_size={self.vocab_size})"
