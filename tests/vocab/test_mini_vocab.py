"""The shipped xlmlib-mini carries its trimmed vocabulary as a real SentencePiece model (no kept_pieces.json):
on text its 31,000 kept pieces cover, it segments as XLM-R's full vocabulary does; sentencepiece, xlmlib and
transformers read it with identical ids; `convert --to hf` gives transformers the same logits."""

from __future__ import annotations

import random

import pytest
import sentencepiece
import torch

import xlmlib
from xlmlib.hub import SHIPPED

transformers = pytest.importorskip("transformers")
MINI = SHIPPED / "xlmlib-mini"


@pytest.fixture(scope="module")
def sample(assets) -> list[str]:
    """400 Tatoeba lines drawn (seed 0) from every file of the 112 pairs, both sides."""
    lines = [line for path in sorted((assets / "tatoeba-laser-v1").glob("tatoeba.*"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    return random.Random(0).sample(lines, 400)


def test_the_mini_tokenizer_is_a_small_sentencepiece_model():
    assert not (MINI / "kept_pieces.json").exists()
    assert (MINI / "sentencepiece.bpe.model").stat().st_size < 1_000_000  # 5,568,926 bytes + the id map before
    sp = sentencepiece.SentencePieceProcessor(model_file=str(MINI / "sentencepiece.bpe.model"))
    tok = xlmlib.Tokenizer.from_pretrained(MINI)
    assert sp.get_piece_size() == 31003 and tok.vocab_size == 31005 and tok.mask_id == 31004


def test_covered_text_segments_as_the_full_vocabulary(assets, sample):
    """Lines whose pieces under XLM-R's full vocabulary are all kept get those same pieces (most lines); the
    others get kept pieces where the full vocabulary used dropped ones."""
    full = xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt")
    mini = xlmlib.Tokenizer.from_pretrained(MINI)
    kept = {mini.id_to_token(i) for i in range(4, mini.mask_id)}
    covered = 0
    for line in sample:
        pieces = full.tokenize(line)
        if set(pieces) <= kept:
            covered += 1
            assert mini.tokenize(line) == pieces, line
    assert covered > 200


def test_sentencepiece_xlmlib_and_transformers_agree_on_the_mini(sample, tmp_path):
    model, tok = xlmlib.load(MINI)
    texts = [*sample, "Paris is the <mask> of France."]
    ours = [tok.encode(t) for t in texts]
    sp = sentencepiece.SentencePieceProcessor(model_file=str(MINI / "sentencepiece.bpe.model"))
    # fairseq's ids: spm <unk> (0) is 3, any other spm id i is i + 1; <s> ... </s> around.
    assert [[0, *(i + 1 if i else 3 for i in ids), 2] for ids in sp.encode(sample)] == ours[:-1]
    in_place = transformers.AutoTokenizer.from_pretrained(MINI)
    assert [in_place(t)["input_ids"] for t in texts] == ours
    xlmlib.convert(MINI, tmp_path / "hf", to="hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert [hf_tok(t)["input_ids"] for t in texts] == ours
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    batch = tok(texts[:64])
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        assert (hf(**batch).logits[real] - model(**batch).logits[real]).abs().max() <= 1e-4
