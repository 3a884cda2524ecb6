"""Rows for new vocabulary pieces: FVT (the mean of the old rows of the old tokenizer's split) or random init.

FVT is Fast Vocabulary Transfer (Gee et al., 2022): a new piece starts as the mean of the embeddings of the
pieces the old tokenizer splits its text into. The split here is the old SentencePiece model's best
segmentation of the piece's text as it stands: no normalisation (the piece is already normalised text), no
dummy prefix, and `▁` matched as itself, so `▁abc` splits as the word " abc" does and `abc` as it does inside
a word. No special token takes part, except <unk>, which is what the old tokenizer gives for characters it
cannot spell (a piece of an unknown script starts as the <unk> row). The LM-head bias follows the same rule.
Random rows are the model's own initialisation (model.init_weights: normal(0, init_std); LM bias 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import sentencepiece
import torch

from . import spm


def _literal_model(proto) -> sentencepiece.SentencePieceProcessor:
    """The same pieces and scores, reading text literally: identity normalisation, no dummy prefix, no
    whitespace handling (sentencepiece's normalizer_spec fields)."""
    literal = spm.pb.ModelProto()
    literal.CopyFrom(proto)
    spec = literal.normalizer_spec
    spec.name, spec.precompiled_charsmap = "identity", b""
    spec.add_dummy_prefix = spec.remove_extra_whitespaces = spec.escape_whitespaces = False
    sp = sentencepiece.SentencePieceProcessor()
    sp.LoadFromSerializedProto(spm.to_bytes(literal))
    return sp


def old_splits(tok, pieces: Sequence[str]) -> list[list[int]]:
    """Model ids (fairseq layout) of the old tokenizer's split of each piece's text."""
    sp = _literal_model(tok.model_proto())
    out = []
    for text in pieces:
        ids = tok.model_ids(sp.encode(text)) if text else []
        if not ids:
            raise ValueError(f"piece {text!r} has no split in the old vocabulary")
        out.append(ids)
    return out


def fvt_rows(table: torch.Tensor, splits: Sequence[Sequence[int]]) -> torch.Tensor:
    """[len(splits), D] (or [len(splits)] for a bias): row k is the mean of table[splits[k]], in fp32."""
    src = table.float()
    return torch.stack([src[torch.as_tensor(ids, dtype=torch.long)].mean(0) for ids in splits])


def random_rows(n: int, dim: int, std: float, seed: int) -> torch.Tensor:
    """[n, dim] rows drawn as model.init_weights draws an embedding: normal(0, std), fp32, seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) * std


def insert_before_last(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """t with `rows` inserted before its last row (<mask> stays last), in t's dtype."""
    return torch.cat([t[:-1], rows.to(t.dtype), t[-1:]])


__all__ = ["fvt_rows", "insert_before_last", "old_splits", "random_rows"]
