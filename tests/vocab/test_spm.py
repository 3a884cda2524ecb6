"""The SentencePiece protobuf edits (xlmlib/vocab/spm.py): keeping a subset of pieces (scores, types, renumbering,
the pieces a model cannot lose), appending pieces, and training a model with another model's settings. Checked
through sentencepiece itself, the reader every other one follows."""

from __future__ import annotations

import pytest
import sentencepiece

import xlmlib
from xlmlib.vocab import spm

TEXT = ["Das Wetter ist schön.", "Wo ist der Bahnhof?", "Er liest ein Buch über Straßenbahnen."]


def processor(proto) -> sentencepiece.SentencePieceProcessor:
    sp = sentencepiece.SentencePieceProcessor()
    sp.LoadFromSerializedProto(spm.to_bytes(proto))
    return sp


@pytest.fixture(scope="module")
def xlmr_proto(assets):
    return spm.read_model(assets / "xlmr-spm-rebuilt" / "sentencepiece.bpe.model")


@pytest.fixture(scope="module")
def byte_proto():
    """A small unigram model with byte fallback, trained here with XLM-R's special ids (0-2)."""
    lines = ["the cat sat on the mat", "a dog and a cat", "where is the station", "la gare est loin"] * 20
    import io

    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, vocab_size=300,
                                             byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                             hard_vocab_limit=False, minloglevel=2)
    return spm.read_model(out.getvalue())


def test_keep_pieces_keeps_scores_types_and_order(xlmr_proto):
    sp = processor(xlmr_proto)
    used = sorted({i for ids in sp.encode(TEXT) for i in ids})
    small = spm.keep_pieces(xlmr_proto, [0, 1, 2, *used])
    assert [p.piece for p in small.pieces] == ["<unk>", "<s>", "</s>", *[xlmr_proto.pieces[i].piece for i in used]]
    assert [(p.score, p.type) for p in small.pieces[3:]] == [(xlmr_proto.pieces[i].score, xlmr_proto.pieces[i].type)
                                                           for i in used]
    assert [p.type for p in small.pieces[:3]] == [spm.UNKNOWN, spm.CONTROL, spm.CONTROL]
    assert small.trainer_spec.vocab_size == len(small.pieces) == 3 + len(used)
    assert small.normalizer_spec == xlmr_proto.normalizer_spec
    # Renumbered in order: old id used[k] is new id 3 + k, and sentencepiece segments the text as before.
    renumber = {old: 3 + k for k, old in enumerate(used)}
    assert processor(small).encode(TEXT) == [[renumber[i] for i in ids] for ids in sp.encode(TEXT)]


def test_keep_pieces_refuses_bad_ids(xlmr_proto):
    with pytest.raises(ValueError, match="strictly increasing"):
        spm.keep_pieces(xlmr_proto, [0, 1, 2, 9, 5])
    with pytest.raises(ValueError, match="strictly increasing"):
        spm.keep_pieces(xlmr_proto, [0, 1, 2, len(xlmr_proto.pieces)])
    with pytest.raises(ValueError, match="'</s>'"):
        spm.keep_pieces(xlmr_proto, [0, 1, 5])


def test_byte_pieces_are_kept_under_byte_fallback(byte_proto, tmp_path):
    """With byte_fallback, sentencepiece needs all 256 byte pieces: required_ids lists them, keep_pieces refuses
    to drop them, and a trimmed tokenizer keeps them, so an unseen character is still spelled in bytes."""
    byte_ids = [i for i, p in enumerate(byte_proto.pieces) if p.type == spm.BYTE]
    assert len(byte_ids) == 256 and set(byte_ids) <= set(spm.required_ids(byte_proto))
    with pytest.raises(ValueError, match="<0x00>"):
        spm.keep_pieces(byte_proto, [0, 1, 2])
    (tmp_path / "sentencepiece.bpe.model").write_bytes(spm.to_bytes(byte_proto))
    tok = xlmlib.Tokenizer.from_pretrained(tmp_path)
    small = tok.trimmed_to([tok.token_to_id("▁cat"), tok.token_to_id("▁")])  # pieces of the trained model
    assert small.vocab_size == 4 + 256 + 2 + 1  # specials, bytes, ▁cat and ▁, <mask>
    assert small.tokenize("cat é") == ["▁cat", "▁", "<0xC3>", "<0xA9>"]  # é is two UTF-8 bytes
    with pytest.raises(ValueError, match="at least one"):
        spm.keep_pieces(byte_proto, spm.required_ids(byte_proto))


def test_add_pieces_appends_normal_pieces(xlmr_proto):
    n = len(xlmr_proto.pieces)
    big = spm.add_pieces(xlmr_proto, [("▁Straßenbahnenhaltestelle", -5.0), ("xqzx", -30.0)])
    assert len(big.pieces) == big.trainer_spec.vocab_size == n + 2
    assert [(p.piece, p.score, p.type) for p in big.pieces[n:]] == [
        ("▁Straßenbahnenhaltestelle", -5.0, spm.NORMAL), ("xqzx", -30.0, spm.NORMAL)]
    sp = processor(big)
    # Every old piece keeps its id; the new word-piece wins its own word (score -5 beats the old split's sum).
    assert [sp.id_to_piece(i) for i in range(n)] == [p.piece for p in xlmr_proto.pieces]
    assert sp.encode("Straßenbahnenhaltestelle") == [n]
    with pytest.raises(ValueError, match="already in the model"):
        spm.add_pieces(xlmr_proto, [("▁de", -1.0)])
    with pytest.raises(ValueError, match="already in the model"):
        spm.add_pieces(xlmr_proto, [("abcq", -1.0), ("abcq", -2.0)])


def test_train_like_reads_the_settings_of_the_model(xlmr_proto, assets):
    """XLM-R's trainer_spec says unigram with <unk> <s> </s> at 0-2 and no <pad>; its normalizer_spec nmt_nfkc
    with a dummy prefix: the trained model has the same settings (the layout the tokenizer requires)."""
    options = spm.trainer_options(xlmr_proto)
    assert options["model_type"] == "unigram" and options["normalization_rule_name"] == "nmt_nfkc"
    assert (options["unk_id"], options["bos_id"], options["eos_id"], options["pad_id"]) == (0, 1, 2, -1)
    lines = (assets / "tatoeba-laser-v1" / "tatoeba.kat-eng.kat").read_text(encoding="utf-8").splitlines()[:300]
    new = spm.train_like(xlmr_proto, lines, 500)
    assert new.trainer_spec.model_type == xlmr_proto.trainer_spec.model_type
    assert new.normalizer_spec.name == "nmt_nfkc" and new.normalizer_spec.add_dummy_prefix
    assert tuple(p.piece for p in new.pieces[:3]) == spm.XLMR_LAYOUT and len(new.pieces) <= 500
    with pytest.raises(ValueError, match="no text"):
        spm.train_like(xlmr_proto, ["", "  "], 500)
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        spm.read_model(b"\xff\xff not a model")
