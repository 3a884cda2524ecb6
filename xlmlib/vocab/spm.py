"""SentencePiece model files as data: read, keep a subset of pieces, append pieces, train one like another.

A `.model` file is a serialised `ModelProto` (sentencepiece's own `sentencepiece_model_pb2`): the pieces in id
order (piece, score, type), a trainer_spec and a normalizer_spec. Editing the pieces and serialising again
gives a file every SentencePiece reader loads (sentencepiece, transformers' XLM-R tokenizer, fairseq).

Invariants a unigram model needs, and what the edits here keep (sentencepiece's model_interface.cc and
unigram_model.cc, v0.2):
- exactly one UNKNOWN piece; XLM-R's layout is `<unk>`, `<s>`, `</s>` at ids 0-2 (trainer_spec unk/bos/eos ids),
  which fairseq's id alignment relies on, so those three stay first;
- CONTROL pieces are never produced by encoding; they are kept;
- with trainer_spec.byte_fallback, all 256 BYTE pieces `<0x00>`..`<0xFF>` must exist (unknown characters are
  spelled in bytes); they are kept;
- USER_DEFINED and NORMAL pieces may go, but not all of them (sentencepiece then loads "no pieces");
  pieces are unique strings;
- the unknown-piece score is min(NORMAL scores) - 10: removing pieces can raise it, which only matters for
  text that needs <unk> anyway.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

from google.protobuf.message import DecodeError
from sentencepiece import SentencePieceTrainer
from sentencepiece import sentencepiece_model_pb2 as pb

Piece = pb.ModelProto.SentencePiece
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = (Piece.NORMAL, Piece.UNKNOWN, Piece.CONTROL,
                                                        Piece.USER_DEFINED, Piece.UNUSED, Piece.BYTE)
# The first three pieces of an XLM-R SentencePiece model (fairseq maps spm id i >= 3 to i + 1).
XLMR_LAYOUT = ("<unk>", "<s>", "</s>")


def read_model(source) -> pb.ModelProto:
    """A ModelProto from a .model file path or its bytes; a clear error for anything else."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    proto = pb.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as err:
        where = "the given bytes" if isinstance(source, bytes) else str(source)
        raise ValueError(f"{where}: not a SentencePiece model ({err})") from None
    return proto


def to_bytes(proto: pb.ModelProto) -> bytes:
    return proto.SerializeToString()


def required_ids(proto: pb.ModelProto) -> list[int]:
    """SentencePiece ids a model cannot lose: the first three (XLM-R's layout), UNKNOWN and CONTROL pieces,
    and the BYTE pieces when unknown characters fall back to bytes."""
    fallback = proto.trainer_spec.byte_fallback
    return [i for i, p in enumerate(proto.pieces)
            if i < 3 or p.type in (UNKNOWN, CONTROL) or (fallback and p.type == BYTE)]


def _copy_specs(proto: pb.ModelProto) -> pb.ModelProto:
    out = pb.ModelProto()
    out.CopyFrom(proto)
    del out.pieces[:]
    return out


def keep_pieces(proto: pb.ModelProto, spm_ids: Iterable[int]) -> pb.ModelProto:
    """A model with only the pieces `spm_ids` (strictly increasing; the required ones included), each with its
    score and type, renumbered 0..n-1 in their old order. Specs are copied; trainer_spec.vocab_size is the
    new size."""
    ids = [int(i) for i in spm_ids]
    n = len(proto.pieces)
    if any(b <= a for a, b in pairwise(ids)) or (ids and (ids[0] < 0 or ids[-1] >= n)):
        raise ValueError(f"piece ids must be strictly increasing and in [0, {n})")
    missing = sorted(set(required_ids(proto)) - set(ids))
    if missing:
        names = ", ".join(repr(proto.pieces[i].piece) for i in missing[:8])
        raise ValueError(f"a SentencePiece model needs its special, control and byte pieces; missing {names}")
    if not any(proto.pieces[i].type in (NORMAL, USER_DEFINED) for i in ids):
        raise ValueError("a SentencePiece model needs at least one normal piece (sentencepiece loads none without)")
    out = _copy_specs(proto)
    for i in ids:
        out.pieces.add().CopyFrom(proto.pieces[i])
    out.trainer_spec.vocab_size = len(ids)
    return out


def add_pieces(proto: pb.ModelProto, pieces: Sequence[tuple[str, float]]) -> pb.ModelProto:
    """A model with NORMAL `pieces` (text, score) appended after the existing ones, whose ids do not move."""
    have = {p.piece for p in proto.pieces}
    seen = set()
    for text, _ in pieces:
        if not text or text in have or text in seen:
            raise ValueError(f"cannot add piece {text!r}: " + ("empty" if not text else "already in the model"))
        seen.add(text)
    out = pb.ModelProto()
    out.CopyFrom(proto)
    for text, score in pieces:
        p = out.pieces.add()
        p.piece, p.score, p.type = text, float(score), NORMAL
    out.trainer_spec.vocab_size = len(out.pieces)
    return out


def trainer_options(proto: pb.ModelProto) -> dict:
    """The settings to train a new model like `proto`: its model type and special ids (trainer_spec), its
    normalisation rule and whitespace handling (normalizer_spec). XLM-R's file records UNIGRAM, ids 0/1/2 for
    <unk>/<s>/</s>, no <pad>, nmt_nfkc with a dummy prefix and extra whitespace removed."""
    t, n = proto.trainer_spec, proto.normalizer_spec
    return {"model_type": pb.TrainerSpec.ModelType.Name(t.model_type).lower(),
            "unk_id": t.unk_id, "bos_id": t.bos_id, "eos_id": t.eos_id, "pad_id": t.pad_id,
            "byte_fallback": t.byte_fallback, "split_digits": t.split_digits,
            "normalization_rule_name": n.name or "nmt_nfkc", "add_dummy_prefix": n.add_dummy_prefix,
            "remove_extra_whitespaces": n.remove_extra_whitespaces}


def train_like(proto: pb.ModelProto, lines: Iterable[str], vocab_size: int, *, seed_pieces: int = 1_000_000,
               character_coverage: float = 0.9995) -> pb.ModelProto:
    """Train a SentencePiece model of `vocab_size` pieces on `lines` with `proto`'s settings, in memory.
    vocab_size is a ceiling (hard_vocab_limit off): a small corpus may give fewer pieces."""
    if vocab_size < 4:
        raise ValueError(f"new_pieces must be >= 4 (the specials take 3 ids), got {vocab_size}")
    text = [line for line in lines if line.strip()]
    if not text:
        raise ValueError("the corpus holds no text to train a SentencePiece model on")
    out = io.BytesIO()
    SentencePieceTrainer.train(sentence_iterator=iter(text), model_writer=out, vocab_size=vocab_size,
                               hard_vocab_limit=False, character_coverage=character_coverage,
                               seed_sentencepiece_size=seed_pieces, num_threads=1, minloglevel=2,
                               **trainer_options(proto))
    return read_model(out.getvalue())


__all__ = ["BYTE", "CONTROL", "NORMAL", "UNKNOWN", "UNUSED", "USER_DEFINED", "XLMR_LAYOUT", "add_pieces",
           "keep_pieces", "read_model", "required_ids", "to_bytes", "train_like", "trainer_options"]
