"""XLM-R tokenizer: SentencePiece pieces with fairseq's dictionary ids.

fairseq's Dictionary puts <s>=0, <pad>=1, </s>=2, <unk>=3 first and then the lines of dict.txt, which
follow the SentencePiece vocabulary from its fourth piece on; so a SentencePiece id i >= 3 becomes
i + 1, SentencePiece's <unk> (0) becomes 3, and the masked-LM task appends <mask> after the last piece
(formats.md sections 3 and 4). Text is encoded by sentencepiece itself, the library fairseq trained
XLM-R with, so ids match it exactly.
"""

from __future__ import annotations

import logging
import re
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece
import torch

from ..atomic import write_bytes as atomic_write
from ..atomic import write_json
from ..family import XLM_R
from ..vocab import spm
from .base import (
    CONFIG_NAME,
    BaseTokenizer,
    configured_max_length,
    read_json,
)

SPM_FILE = "sentencepiece.bpe.model"
# Trimmed folders written before the trimmer made real SentencePiece models kept the whole original .model
# and listed here the SentencePiece ids they kept, in the order of their new ids (4, 5, ...). Such a folder
# is read by building that trimmed model in memory (vocab/spm.py), so it behaves as a new one.
KEPT_FILE = "kept_pieces.json"
MASK = "<mask>"
SPECIALS = {0: "<s>", 1: "<pad>", 2: "</s>", 3: "<unk>"}
# The SentencePiece ids of <unk>, <s>, </s> that the fairseq alignment above assumes.
_SPM_LAYOUT = spm.XLMR_LAYOUT

logger = logging.getLogger(__name__)


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

    def __init__(self, model_file=None, *, model_max_length: int = 512, model_bytes: bytes | None = None):
        """`model_file`: a SentencePiece .model file; or `model_bytes`, its contents (an edited model)."""
        path = None if model_file is None else Path(model_file)
        if model_bytes is None:
            if path is None:
                raise TypeError("XLMRTokenizer needs a model_file or model_bytes")
            if not path.is_file():
                raise FileNotFoundError(f"missing SentencePiece model file: {path}")
            model_bytes = path.read_bytes()
        where = path if path is not None else "SentencePiece model"
        self._model_bytes = model_bytes
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self._model_bytes)
        except (RuntimeError, OSError, TypeError) as err:
            raise ValueError(f"corrupt SentencePiece model file {where}: {err}") from None
        layout = tuple(self.sp.id_to_piece(i) for i in range(min(3, self.sp.get_piece_size())))
        if layout != _SPM_LAYOUT:
            raise ValueError(f"{where}: expected SentencePiece ids 0-2 to be {_SPM_LAYOUT}, found {layout}")
        self.model_file = path
        self.model_max_length = int(model_max_length)
        self._set_pieces()

    def _set_pieces(self) -> None:
        """Id tables: every SentencePiece piece from id 3 on has model id spm id + 1 (fairseq's dict.txt
        order); SentencePiece's <unk> (0) is model id 3, and <mask> follows the last piece."""
        n = self.sp.get_piece_size()
        self._spm2model = np.arange(1, n + 1, dtype=np.int64)
        self._spm2model[:3] = self.unk_id  # <s>, </s> never come out of encoding; <unk> is 3
        self.mask_id = n + 1
        self.vocab_size = n + 2
        self._required = None  # required_ids, computed on first use

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, src, **kwargs) -> XLMRTokenizer:
        src = Path(src)
        if src.is_file():
            return cls(src, **kwargs)
        config = read_json(src / CONFIG_NAME) if (src / CONFIG_NAME).is_file() else {}
        kwargs.setdefault("model_max_length", configured_max_length(config))
        if (src / KEPT_FILE).is_file() and "model_bytes" not in kwargs:
            kwargs["model_bytes"] = _legacy_trimmed_model(src)
        return cls(src / SPM_FILE, **kwargs)

    def save_pretrained(self, directory) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / SPM_FILE, self._model_bytes)
        # transformers' class name and special tokens, so AutoTokenizer loads the folder too (ours reads both):
        # a trimmed or extended model is a plain SentencePiece model, whose ids transformers computes as ours.
        specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": MASK}
        write_json(directory / CONFIG_NAME, {"tokenizer_class": XLM_R.hf_tokenizer,
                                             "model_max_length": self.model_max_length, **specials})
        write_json(directory / "special_tokens_map.json", specials)
        if (directory / KEPT_FILE).is_file():
            (directory / KEPT_FILE).unlink()  # saved over a trimmed folder of the old form
        return directory

    def model_ids(self, spm_ids) -> list[int]:
        """The model ids (fairseq layout) of SentencePiece ids of this tokenizer's model."""
        return self._to_model_ids(list(spm_ids))

    def model_proto(self):
        """The SentencePiece ModelProto of this tokenizer (a copy to edit: xlmlib/vocab/spm.py)."""
        return spm.read_model(self._model_bytes)

    def required_ids(self) -> set[int]:
        """Model ids a trimmed vocabulary must keep: the 4 fairseq specials, <mask>, and the pieces the
        SentencePiece model cannot lose (control pieces; byte pieces under byte fallback)."""
        if self._required is None:  # parsing the model proto takes ~0.3 s for XLM-R's 250k pieces: once
            self._required = {int(self._spm2model[i]) for i in spm.required_ids(self.model_proto()) if i >= 3}
        return {0, 1, 2, 3, self.mask_id} | self._required

    def trimmed_to(self, keep_ids) -> XLMRTokenizer:
        """A tokenizer over the model ids `keep_ids` only (specials, <mask> and required pieces always kept),
        renumbered in their order: a SentencePiece model of the kept pieces, with their scores and types.
        Text whose segmentation used only kept pieces keeps it (unigram Viterbi over fewer pieces); other
        text gets the best segmentation among the kept pieces."""
        keep = {int(i) for i in keep_ids} | self.required_ids()
        spm_ids = [0, 1, 2] + sorted(i - 1 for i in keep if 4 <= i < self.mask_id)
        proto = spm.keep_pieces(self.model_proto(), spm_ids)
        return XLMRTokenizer(model_max_length=self.model_max_length, model_bytes=spm.to_bytes(proto))

    def extended_with(self, pieces) -> XLMRTokenizer:
        """A tokenizer whose SentencePiece model has `pieces` ((text, score), NORMAL) appended: every old id
        stays, the new pieces take ids mask_id, mask_id + 1, ..., and <mask> moves to the new last id."""
        proto = spm.add_pieces(self.model_proto(), pieces)
        return XLMRTokenizer(model_max_length=self.model_max_length, model_bytes=spm.to_bytes(proto))

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
        """A piece starting with ▁ opens a word (SentencePiece pieces 3.. hold model ids 4 .. mask - 1)."""
        starts = torch.zeros(self.vocab_size, dtype=torch.bool)
        starts[4:self.mask_id] = torch.tensor(
            [self.sp.id_to_piece(i).startswith("\u2581") for i in range(3, self.sp.get_piece_size())],
            dtype=torch.bool)
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
        return self.sp.id_to_piece(i - 1)

    def token_to_id(self, token: str) -> int:
        for i, s in SPECIALS.items():
            if s == token:
                return i
        if token == MASK:
            return self.mask_id
        return int(self._spm2model[self.sp.piece_to_id(token)])

    def __repr__(self) -> str:
        source = str(self.model_file) if self.model_file is not None else "<edited model>"
        return f"XLMRTokenizer({source!r}, vocab_size={self.vocab_size})"


def _legacy_trimmed_model(folder: Path) -> bytes:
    """The SentencePiece model a trimmed folder of the old form stands for: its whole .model restricted to
    the ids kept_pieces.json lists. Ids of covered text are the old ones; text that used a dropped piece now
    falls back to kept pieces instead of <unk>."""
    kept = read_json(folder / KEPT_FILE).get("kept_spm_ids")
    if not isinstance(kept, list) or not all(isinstance(i, int) for i in kept):
        raise ValueError(f"{folder / KEPT_FILE}: expected {{\"kept_spm_ids\": [int, ...]}}")
    if not (folder / SPM_FILE).is_file():
        raise FileNotFoundError(f"missing SentencePiece model file: {folder / SPM_FILE}")
    full = spm.read_model((folder / SPM_FILE).read_bytes())
    if kept and (min(kept) < 3 or max(kept) >= len(full.pieces)):
        raise ValueError(f"{folder / KEPT_FILE}: kept ids must lie in [3, {len(full.pieces)})")
    logger.info("%s: a trimmed folder of the old form (%s); reading it as a trimmed SentencePiece model",
                folder, KEPT_FILE)
    return spm.to_bytes(spm.keep_pieces(full, [0, 1, 2] + sorted(kept)))
