"""The Python API and every inference CLI verb, on a tiny random model that uses the real XLM-R
SentencePiece vocabulary (shared assets) and was saved with save_pretrained next to its tokenizer."""

import numpy as np
import pytest
import torch

import xlmlib
from xlmlib.api import fill_text

from ..folders import cli, save_tiny_xlm, save_tiny_xlmr

VOCAB = 250002  # XLM-R's fairseq ids: 250000 pieces + 4 specials - 3 shared + <mask> (formats.md section 3)


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("tiny-xlmr")
    save_tiny_xlmr(folder, assets, xlmlib.CausalLM, dropout=0.0, attention_dropout=0.0)
    assert xlmlib.ModelConfig.from_preset("xlm-roberta-base").vocab_size == VOCAB
    return folder


def test_load_gives_model_and_tokenizer(xlmr_dir):
    model, tok = xlmlib.load(xlmr_dir, task="masked-lm", device="auto")
    assert isinstance(model, xlmlib.MaskedLM) and tok.vocab_size == VOCAB
    assert model(**tok(["Hello world", "x"])).logits.shape[:2] == (2, 4)
    with pytest.raises(ValueError, match="unknown task 'summarize'"):
        xlmlib.load(xlmr_dir, task="summarize")


def test_fill_mask_ranks_candidates_and_keeps_spacing(xlmr_dir):
    model, tok = xlmlib.load(xlmr_dir, task="masked-lm")
    result = xlmlib.fill_mask(model, tok, "Paris is the <mask> of France.", top_k=3)
    assert len(result) == 1 and len(result[0]) == 3
    scores = [c["score"] for c in result[0]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    for cand in result[0]:
        assert cand["text"].startswith("Paris is the ") and cand["text"].endswith(" of France.")
    with pytest.raises(ValueError, match="no mask token '<mask>'"):
        xlmlib.fill_mask(model, tok, "no mask here")


def test_filled_word_pieces_keep_their_space():
    """The fairseq / transformers bug (FS#1306): 'is<mask>' filled with '▁Jennifer' must read 'is Jennifer'."""
    assert fill_text("My name is<mask>.", "<mask>", 0, " Jennifer") == "My name is Jennifer."
    assert fill_text("My name is <mask>.", "<mask>", 0, " Jennifer") == "My name is Jennifer."
    assert fill_text("<mask> went home", "<mask>", 0, " She") == "She went home"
    assert fill_text("a <mask> b <mask>", "<mask>", 1, " c") == "a <mask> b c"


def test_embed_batches_by_length_and_keeps_order(xlmr_dir):
    model, tok = xlmlib.load(xlmr_dir, task="encoder")
    texts = ["a much longer sentence than the others here", "short", "middle length one"]
    vecs = xlmlib.embed(model, tok, texts, batch_size=2)
    one_by_one = torch.cat([xlmlib.embed(model, tok, [t]) for t in texts])
    torch.testing.assert_close(vecs, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(vecs.norm(dim=-1), torch.ones(3))
    assert xlmlib.embed(model, tok, texts, pooling="cls", normalize=False).shape == (3, 16)


def test_generate_continues_prompts(xlmr_dir):
    model, tok = xlmlib.load(xlmr_dir, task="causal-lm")
    texts = xlmlib.generate(model, tok, ["Hello world", "A"], max_new_tokens=5)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert texts == xlmlib.generate(model, tok, ["Hello world", "A"], max_new_tokens=5)


def test_cli_verbs(xlmr_dir, tmp_path):
    info = cli("info", xlmr_dir)
    assert info.code == 0, info.err
    assert "vocabulary:  250002" in info.out and "format:      xlmlib" in info.out
    fill = cli("fill-mask", "--model", xlmr_dir, "Paris is the <mask> of France.", "--top-k", "2")
    assert fill.code == 0, fill.err
    assert fill.out.count("Paris is the ") == 2
    (tmp_path / "in.txt").write_text("first line\nsecond line\nthird\n", encoding="utf-8")
    emb = cli("embed", "--model", xlmr_dir, "--input", tmp_path / "in.txt", "--output", tmp_path / "v.npy")
    assert emb.code == 0, emb.err
    assert np.load(tmp_path / "v.npy").shape == (3, 16)
    gen = cli("generate", "--model", xlmr_dir, "Hello", "--max-new-tokens", "3")
    assert gen.code == 0 and gen.out.startswith("Hello"), gen.err


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    bad = cli("info", tmp_path / "missing")
    assert bad.code == 1
    assert bad.err.startswith("xlmlib info: error: ") and "Traceback" not in bad.err
    with pytest.raises(FileNotFoundError):  # --debug lets the exception (and its traceback) through
        cli("--debug", "info", tmp_path / "missing")
    for verb in ("info", "fill-mask", "embed", "generate"):
        helped = cli(verb, "--help")
        assert helped.code == 0 and "example: xlmlib " + verb in helped.out


@pytest.fixture(scope="module")
def xlm_dir(tmp_path_factory, assets):
    """A tiny XNLI-15-shaped XLM (language embeddings) with the released XNLI-15 BPE vocabulary."""
    return save_tiny_xlm(tmp_path_factory.mktemp("tiny-xlm"), assets, xlmlib.CausalLM, dropout=0.0,
                         attention_dropout=0.0)


def test_xlm_api_carries_languages(xlm_dir):
    model, tok = xlmlib.load(xlm_dir, task="masked-lm")
    result = xlmlib.fill_mask(model, tok, "le chat est <special1> .", lang="fr", top_k=2)
    assert len(result[0]) == 2 and all(c["text"].startswith("le chat est ") for c in result[0])
    with pytest.raises(ValueError, match="needs a language: pass lang= one of ar, bg, de"):
        xlmlib.fill_mask(model, tok, "le chat est <special1> .")
    clm, tok = xlmlib.load(xlm_dir, task="causal-lm")
    assert len(xlmlib.generate(clm, tok, ["le chat", "the cat sat"], lang="fr", max_new_tokens=3)) == 2
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        xlmlib.generate(clm, tok, "le chat", lang="xx", max_new_tokens=3)
    vectors = xlmlib.embed(xlmlib.Encoder.from_pretrained(xlm_dir), tok, ["un", "deux trois"], lang="fr")
    assert vectors.shape == (2, 16)
