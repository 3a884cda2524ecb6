"""classify / tag (xlmlib.evaluation.predict) on tiny random models beside the real tokenizers (shared assets):
label names come from the saved config; inputs are framed as fine-tuning frames them (checked against ids built
here by hand from formats.md section 3: XLM-R `<s>=0 A </s>=2 </s>=2 B </s>=2`, XLM `</s>=1 A </s>=1 B </s>=1`);
a word's label is the argmax at its first sub-token; entity offsets point at the right characters."""

import logging

import pytest
import torch

import xlmlib
from xlmlib.evaluation import classify, entities, tag
from xlmlib.tokenize import XLMTokenizer
from xlmlib.tokenize.base import TruncationWarning

from ..folders import save_tiny_xlmr

NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NLI = ("entailment", "neutral", "contradiction")
# Written for this test: compounds that SentencePiece cuts into several pieces (Bundesverfassungsrichterin: 6).
SENTENCE = "Die Bundesverfassungsrichterin Annegret Berger wohnt in Oberammergau."


def _sharpen(model):
    """The random classifier gives nearly uniform probabilities; scaled up, its argmax varies from token to
    token, so that taking the wrong sub-token would change labels."""
    with torch.no_grad():
        for p in model.classifier.parameters():
            p.mul_(40)
    return model


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("tagger")
    # 34 position rows - offset 2: the model takes 32 tokens, so long inputs need several windows.
    save_tiny_xlmr(folder, assets, cls=xlmlib.TokenClassifier, labels=NER, num_labels=5, max_positions=34)
    model, tok = xlmlib.load(folder, task="token-classification")
    return _sharpen(model), tok


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("classifier")
    save_tiny_xlmr(folder, assets, cls=xlmlib.SequenceClassifier, labels=NLI, num_labels=3, max_positions=34)
    model, tok = xlmlib.load(folder, task="sequence-classification")
    return _sharpen(model), tok


def _pieces(tok, word, **kw):
    return tok.encode(word, add_special_tokens=False, **kw)


@torch.no_grad()
def _direct(model, ids, lang_row=None):
    ids = torch.tensor([ids])
    langs = None if lang_row is None else torch.full_like(ids, lang_row)
    return model(ids, langs=langs).logits[0].float()


def _word_logits(model, tok, words):
    """Each word encoded alone, `<s> pieces... </s>`; logits and the position of each word's first piece."""
    pieces = [_pieces(tok, w) for w in words]
    firsts = [1 + sum(len(p) for p in pieces[:k]) for k in range(len(words))]
    return _direct(model, [0, *[i for p in pieces for i in p], 2]), firsts, pieces


# -- tag --------------------------------------------------------------------------------------------------------
def test_a_words_label_is_the_argmax_at_its_first_sub_token(tagger):
    model, tok = tagger
    out = tag(model, tok, SENTENCE)
    words = ["Die", "Bundesverfassungsrichterin", "Annegret", "Berger", "wohnt", "in", "Oberammergau", "."]
    assert out["words"] == words
    logits, firsts, pieces = _word_logits(model, tok, words)
    assert out["labels"] == [NER[int(logits[f].argmax())] for f in firsts]
    assert out["scores"] == pytest.approx([float(logits[f].softmax(-1).max()) for f in firsts], abs=1e-5)
    # The check can fail: some word's later pieces are predicted differently from its first.
    assert any(int(logits[f + k].argmax()) != int(logits[f].argmax())
               for f, p in zip(firsts, pieces) for k in range(1, len(p)))


def test_entities_have_character_offsets_into_the_text(tagger):
    model, tok = tagger
    texts = [SENTENCE, "Tom wohnt in Paris.", "Anna und Peter fahren nach Köln, Bonn und Berlin."]
    found = 0
    for out in tag(model, tok, texts):
        text = out["text"]
        assert [text[s:e] for s, e in out["offsets"]] == out["words"]
        chunks = entities(out["labels"])
        assert [(e["type"], e["words"][0], e["words"][1] - 1) for e in out["entities"]] == chunks
        for e in out["entities"]:
            i, j = e["words"]
            assert e["text"] == text[e["start"]:e["end"]]
            assert (e["start"], e["end"]) == (out["offsets"][i][0], out["offsets"][j - 1][1])
            assert e["score"] == pytest.approx(sum(out["scores"][i:j]) / (j - i))
        found += len(chunks)
    assert found >= 3  # the random tagger does predict entities here: the checks above ran


def test_a_list_of_words_is_used_as_is(tagger):
    model, tok = tagger
    words = ["New", "York", "ist", "groß", "!"]
    out = tag(model, tok, [words])[0]
    assert out["words"] == words and out["text"] == "New York ist groß !"
    assert out["offsets"] == [(0, 3), (4, 8), (9, 12), (13, 17), (18, 19)]
    logits, firsts, _ = _word_logits(model, tok, words)
    assert out["labels"] == [NER[int(logits[f].argmax())] for f in firsts]
    single = tag(model, tok, "New York ist groß!")  # split from text: the same words, other offsets
    assert single["labels"] == out["labels"] and single["offsets"][-1] == (17, 18)


def test_long_inputs_are_tagged_window_by_window(tagger):
    model, tok = tagger
    words = (SENTENCE + " " + "Tom wohnt in Paris und arbeitet in Lyon.").split() * 4
    out = tag(model, tok, [words])[0]
    assert len(out["labels"]) == len(words)
    # Windows built here: as many whole words as fit 30 pieces (32 tokens less <s> and </s>).
    expected, start = [], 0
    while start < len(words):
        end, used = start, 0
        while end < len(words) and used + len(_pieces(tok, words[end])) <= 30:
            used += len(_pieces(tok, words[end]))
            end += 1
        logits, firsts, _ = _word_logits(model, tok, words[start:end])
        expected += [NER[int(logits[f].argmax())] for f in firsts]
        start = end
    assert start > 30 and out["labels"] == expected


def test_a_word_longer_than_the_model_takes_keeps_its_first_pieces(tagger):
    model, tok = tagger
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänsmützenabzeichenhersteller" * 2
    pieces = _pieces(tok, long_word)
    assert len(pieces) > 30
    out = tag(model, tok, [[long_word, "Paris"]])[0]
    first = _direct(model, [0, *pieces[:30], 2])[1]
    assert out["labels"][0] == NER[int(first.argmax())] and len(out["labels"]) == 2


def test_labels_that_are_not_entity_tags_give_no_entities(tmp_path, assets):
    save_tiny_xlmr(tmp_path, assets, cls=xlmlib.TokenClassifier, labels=("NOUN", "VERB", "ADJ"), num_labels=3)
    model, tok = xlmlib.load(tmp_path, task="token-classification")
    out = tag(model, tok, "Tom wohnt in Paris.")
    assert set(out["labels"]) <= {"NOUN", "VERB", "ADJ"} and out["entities"] == []


def test_tag_errors(tagger, classifier):
    model, tok = tagger
    with pytest.raises(TypeError, match=r"tag\(\) needs a TokenClassifier, got SequenceClassifier"):
        tag(classifier[0], classifier[1], "Tom")
    with pytest.raises(TypeError, match="input 1: expected a text"):
        tag(model, tok, ["Tom", 3])
    with pytest.raises(ValueError, match="unknown tagging scheme"):
        tag(model, tok, "Tom", scheme="XYZ")
    assert tag(model, tok, "")["words"] == [] and tag(model, tok, []) == []


# -- classify ---------------------------------------------------------------------------------------------------
def test_classify_frames_pairs_as_fine_tuning_and_names_labels(classifier):
    model, tok = classifier
    a, b = "Der Hund schläft.", "Ein Tier ruht."
    ids = [0, *_pieces(tok, a), 2, 2, *_pieces(tok, b), 2]
    assert tok(a, b)["input_ids"][0].tolist() == ids  # XLM-R: the tokenizer's pair call frames the same way
    probs = _direct(model, ids).softmax(-1)
    out = classify(model, tok, a, b)
    assert out["label"] == NLI[int(probs.argmax())] and out["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert out["scores"] == pytest.approx(dict(zip(NLI, probs.tolist())), abs=1e-5)
    assert sum(out["scores"].values()) == pytest.approx(1.0)
    single = classify(model, tok, a)
    assert single["scores"] == pytest.approx(dict(zip(NLI, _direct(model, [0, *_pieces(tok, a), 2]).softmax(-1)
                                                       .tolist())), abs=1e-5)


def test_classify_batches_give_what_single_calls_give(classifier):
    model, tok = classifier
    firsts = ["Der Hund schläft.", "Es regnet heute den ganzen Tag in Berlin.", "Ja."]
    seconds = ["Ein Tier ruht.", "Die Sonne scheint.", "Nein, sicher nicht."]
    batched = classify(model, tok, firsts, seconds, batch_size=2)
    labels = {r["label"] for r in batched}
    for r, a, b in zip(batched, firsts, seconds):
        one = classify(model, tok, a, b)
        assert r["label"] == one["label"] and r["scores"] == pytest.approx(one["scores"], abs=1e-5)
    assert labels <= set(NLI)


def test_classify_cuts_long_inputs_with_one_warning(classifier):
    model, tok = classifier
    with pytest.warns(TruncationWarning, match="classify: cut 1 of 2 inputs to 32 tokens"):
        classify(model, tok, ["kurz", "sehr lang " * 40])


def test_unnamed_labels_and_errors(tmp_path, assets, classifier, tagger, caplog):
    save_tiny_xlmr(tmp_path, assets, cls=xlmlib.SequenceClassifier, num_labels=3)
    model, tok = xlmlib.load(tmp_path, task="sequence-classification")
    assert set(classify(model, tok, "Hallo")["scores"]) == {"LABEL_0", "LABEL_1", "LABEL_2"}
    with pytest.raises(ValueError, match="2 texts, 1 text_pairs"):
        classify(model, tok, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="a str pairs with a str"):
        classify(model, tok, "a", ["c"])
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        classify(model, tok, ["a", None])
    with pytest.raises(TypeError, match=r"classify\(\) needs a SequenceClassifier"):
        classify(tagger[0], tagger[1], "a")
    with caplog.at_level(logging.WARNING):  # every entry point's rule (xlmlib/languages.py), once per code
        classify(model, tok, "Hallo", lang="classify-test-code")
    assert "lang 'classify-test-code' has no effect" in caplog.text


# -- XLM: language embeddings -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_xlm(assets):
    """A tiny random XLM (en-fr layout: language embeddings for en=0, fr=1) beside the released en-fr BPE."""
    tok = XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="enfr")
    cfg = xlmlib.ModelConfig.from_preset("xlm-mlm-enfr-1024").replace(
        n_layers=1, dim=16, n_heads=2, ffn_dim=32, vocab_size=tok.vocab_size, num_labels=3, labels=NLI)
    torch.manual_seed(0)
    model = xlmlib.SequenceClassifier(cfg)
    model.reset_parameters()
    return _sharpen(model.eval()), tok


def test_xlm_needs_a_language_it_knows(tiny_xlm):
    model, tok = tiny_xlm
    with pytest.raises(ValueError, match="pass lang= one of en, fr"):
        classify(model, tok, "Hello", "Bonjour")
    with pytest.raises(ValueError, match="unknown language 'de': this model knows en, fr"):
        classify(model, tok, "Hallo", lang="de")


def test_xlm_pairs_are_framed_as_xlms_xnli_and_use_the_language_row(tiny_xlm):
    model, tok = tiny_xlm
    a, b = "Le chat dort.", "Un animal se repose."
    ids = [1, *_pieces(tok, a, lang="fr"), 1, *_pieces(tok, b, lang="fr"), 1]
    out = classify(model, tok, a, b, lang="fr")
    as_fr, as_en = _direct(model, ids, lang_row=1).softmax(-1), _direct(model, ids, lang_row=0).softmax(-1)
    assert out["scores"] == pytest.approx(dict(zip(NLI, as_fr.tolist())), abs=1e-5)
    assert not torch.allclose(as_fr, as_en, atol=1e-3)  # the language row matters: the check above can fail
