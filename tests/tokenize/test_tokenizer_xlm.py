"""XLMTokenizer against transformers' XLMTokenizer given the same released vocabulary (converted with
our converter), on the Tatoeba languages each vocabulary covers, plus loading, saving and languages."""

from __future__ import annotations

import json

import pytest
import torch

from xlmlib.tokenize import Tokenizer, XLMTokenizer, learn_bpe
from xlmlib.tokenize.learn import convert_fastbpe

# zh and th need rjieba / pythainlp (the optional extras); they are covered by the ImportError test.
XNLI_TATOEBA = ["ara", "bul", "deu", "ell", "eng:spa", "spa", "fra", "hin", "rus", "swh", "tur", "urd", "vie"]


def hf_tokens(theirs, text, lang):
    """transformers' XLM pipeline for `lang`. Its public tokenize()/__call__ drop the lang argument in
    transformers 5 (tokenization_python.tokenize calls self._tokenize(text) without kwargs), so they
    always apply the English Moses rules; `_tokenize(text, lang=...)` is the pipeline that honours it."""
    return theirs._tokenize(text, lang=lang)


def hf_ids(theirs, text, lang, pair=None):
    ids = theirs.convert_tokens_to_ids(hf_tokens(theirs, text, lang))
    second = None if pair is None else theirs.convert_tokens_to_ids(hf_tokens(theirs, pair, lang))
    return theirs.build_inputs_with_special_tokens(ids, second)


def compare(ours, theirs, lines, lang):
    """Lines where tokens or ids (with specials) differ between ours and transformers."""
    bad = []
    ours_ids = ours(lines, lang=lang, padding=False, truncation=False, return_tensors=None)["input_ids"]
    for line, ids in zip(lines, ours_ids):
        if ours.tokenize(line, lang=lang) != hf_tokens(theirs, line, lang) or ids != hf_ids(theirs, line, lang):
            bad.append(line)
    return bad


def test_transformers_public_call_ignores_lang(xlm_release, hf_xlm):
    # Recorded transformers 5.23 behaviour: lang= does not reach the pipeline, English rules apply.
    # French elision "n'ai" is "n'" + "ai" under the French rules and "n" + "'ai" under the English ones.
    theirs, ours = hf_xlm("enfr"), xlm_release("enfr")
    text = "Je n'ai pas le temps."
    assert theirs.tokenize(text, lang="fr") == ours.tokenize(text, lang="en") != ours.tokenize(text, lang="fr")
    assert "n'</w>" in ours.tokenize(text, lang="fr")


def test_enfr_matches_transformers(xlm_release, hf_xlm, tatoeba):
    ours, theirs = xlm_release("enfr"), hf_xlm("enfr")
    assert not ours.do_lowercase_and_remove_accent  # the en-fr vocabulary is cased (PROVENANCE.md 1)
    fra, eng = tatoeba("fra"), tatoeba("eng:fra") + tatoeba("eng:deu")[::2]
    assert compare(ours, theirs, fra, "fr") == []
    assert compare(ours, theirs, eng, "en") == []
    assert len(fra) + len(eng) == 2500


def test_ende_matches_transformers(xlm_release, hf_xlm, tatoeba):
    ours, theirs = xlm_release("ende"), hf_xlm("ende")
    assert compare(ours, theirs, tatoeba("deu"), "de") == []


def test_xnli15_matches_transformers(xlm_release, hf_xlm, tatoeba, tatoeba_to_xlm):
    ours, theirs = xlm_release("xnli_15"), hf_xlm("xnli_15")
    assert ours.do_lowercase_and_remove_accent and ours.vocab_size == 95000  # XLM README: --max_vocab 95000
    compared = 0
    for code in XNLI_TATOEBA:
        lines = tatoeba(code)[::2]
        assert compare(ours, theirs, lines, tatoeba_to_xlm[code.split(":")[0]]) == [], code
        compared += len(lines)
    assert compared > 5000


def test_pairs_match_transformers(xlm_release, hf_xlm, tatoeba):
    ours, theirs = xlm_release("xnli_15"), hf_xlm("xnli_15")
    firsts, seconds = tatoeba("spa")[:200], tatoeba("eng:spa")[:200]
    got = ours(firsts, seconds, lang="es", padding=False, truncation=False, return_tensors=None)["input_ids"]
    want = [hf_ids(theirs, a, "es", b) for a, b in zip(firsts, seconds)]
    assert got == want


def test_langs_and_languages(xlm_release):
    tok = xlm_release("xnli_15")
    batch = tok(["hola", "buenos dias"], lang="es")
    assert set(batch) == {"input_ids", "attention_mask", "langs"}  # never token_type_ids (formats.md 1)
    assert torch.equal(batch["langs"], torch.full_like(batch["input_ids"], 5))  # sorted XNLI-15 codes: es is 5
    per_text = tok(["hola", "hello"], lang=["es", "en"])["langs"][:, 0].tolist()
    assert per_text == [5, 4]
    with pytest.raises(ValueError, match=r"unknown language 'xx'.*'ar', 'bg'"):
        tok("text", lang="xx")
    with pytest.raises(ValueError, match="pass lang="):
        tok("text")
    no_emb = XLMTokenizer(tok.vocab, tok.bpe.merges, lang2id={"en": 0, "fr": 1}, use_lang_emb=False)
    assert "langs" not in no_emb("text", lang="fr")


def test_special_tokens_and_empty_text(xlm_release, hf_xlm):
    ours, theirs = xlm_release("enfr"), hf_xlm("enfr")
    assert ours.encode("", lang="en") == [0, 1]
    text = "The <special1> is here . </s> x"
    assert ours.encode(text, lang="en") == theirs(text, lang="en")["input_ids"]
    assert 5 in ours.encode(text, lang="en")  # <special1> is the mask (formats.md 2)


def test_decode(xlm_release):
    tok = xlm_release("enfr")
    ids = tok.encode("Hello, how are you?", lang="en")
    assert tok.decode(ids, skip_special_tokens=True) == "Hello , how are you ?"


def test_converter_output(assets, tmp_path):
    folder = assets / "xlm-bpe-fastbpe"
    out = convert_fastbpe(folder / "codes_xnli_15", folder / "vocab_xnli_15", tmp_path, max_vocab=95000)
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 95000 and vocab["<special1>"] == 5
    # vocab_xnli_15 line 0 is ", 146805425" (a whole word) -> ",</w>" at id 14; "@@" pieces lose the marker
    assert vocab[",</w>"] == 14
    first_line = (folder / "vocab_xnli_15").read_text(encoding="utf-8").split("\n", 1)[0]
    assert first_line.split() == [",", "146805425"]
    merges = (out / "merges.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(merges) == 80000 and merges[0] == " ".join((folder / "codes_xnli_15").open(encoding="utf-8")
                                                          .readline().split()[:2])


def test_released_whitespace_lines_are_skipped(assets):
    # vocab_xnli_15 has 121332 lines (PROVENANCE.md 1); XLM's Dictionary skips lines holding U+2028 and
    # lines that split() into other than two fields. Listing them by hand gave 18: whitespace tokens
    # such as "\xa0 24605", "\u3000@@ 143", "\u2028 6". The other lines keep consecutive ids from 14.
    from xlmlib.tokenize.bpe import read_fastbpe_vocab

    vocab = read_fastbpe_vocab(assets / "xlm-bpe-fastbpe" / "vocab_xnli_15")
    assert max(vocab.values()) == 14 + 121332 - 18 - 1
    assert "\xa0</w>" not in vocab and vocab["!</w>"] == 950


def test_save_and_reload_in_both_libraries(xlm_release, tmp_path, tatoeba):
    transformers = pytest.importorskip("transformers")
    tok = xlm_release("xnli_15")
    tok.save_pretrained(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    assert isinstance(again, XLMTokenizer) and again.lang2id == tok.lang2id and again.use_lang_emb
    theirs = transformers.XLMTokenizer.from_pretrained(str(tmp_path))
    lines = tatoeba("rus")[:100]
    assert again(lines, lang="ru", return_tensors=None, padding=False)["input_ids"] == \
        [hf_ids(theirs, line, "ru") for line in lines]


def test_missing_and_corrupt_files(tmp_path, xlm_release):
    with pytest.raises(FileNotFoundError, match="codes_"):
        XLMTokenizer.from_pretrained(tmp_path)
    xlm_release("enfr").save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="NoneType"):
        xlm_release("enfr")(None, lang="en")


def test_segmenter_extras_name_the_extra(xlm_release, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in {"rjieba", "pythainlp", "Mykytea"}:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    for lang, extra in (("zh", "zh"), ("th", "th"), ("ja", "ja")):
        tok = XLMTokenizer(xlm_release("xnli_15").vocab, [], lang2id=None)
        with pytest.raises(ImportError, match=rf"xlmlib\[{extra}\]"):
            tok.tokenize("文字", lang=lang)


def test_learn_bpe_loads_in_both_libraries(tatoeba, tmp_path):
    transformers = pytest.importorskip("transformers")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tatoeba("fra")[:600]) + "\n", encoding="utf-8")
    ours = learn_bpe(corpus, 300, tmp_path / "vocab", lang="fr", lang2id={"fr": 0})
    assert len(ours.bpe.merges) == 300
    again = learn_bpe(corpus, 300, lang="fr")
    assert again.bpe.merges == ours.bpe.merges and again.vocab == ours.vocab  # deterministic
    theirs = transformers.XLMTokenizer.from_pretrained(str(tmp_path / "vocab"))
    held_out = tatoeba("fra")[600:700]
    mine = Tokenizer.from_pretrained(tmp_path / "vocab")
    assert mine(held_out, lang="fr", padding=False, return_tensors=None)["input_ids"] == \
        [hf_ids(theirs, line, "fr") for line in held_out]
    train_ids = [i for line in tatoeba("fra")[:600] for i in mine.encode(line, lang="fr")]
    assert 3 not in train_ids  # every training character has both of its forms in the vocabulary
