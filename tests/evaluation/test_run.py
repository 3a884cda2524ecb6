"""One evaluation across languages (xlmlib.evaluate, `xlmlib evaluate`) and the classify / tag / mine verbs, in
this process, on tiny random models beside the real XLM-R vocabulary and the real German XNLI, Tatoeba and
generated CoNLL data. Expected values are recomputed here from the model's own predictions (classify, tag) or
the shared metric functions, never typed in: these tests check the table, not what a random model scores."""

from __future__ import annotations

import json

import pytest

import xlmlib
from xlmlib.evaluation.run import parse_tests

from ..folders import cli, save_tiny_xlmr

NER = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NLI = ("entailment", "neutral", "contradiction")
CONLL = ["Anna B-PER", "wohnt O", "in O", "Berlin B-LOC", ".", "", "Tom B-PER", "Berger I-PER", "schläft O", ""]


@pytest.fixture(scope="module")
def files(tmp_path_factory, assets):
    folder = tmp_path_factory.mktemp("eval")
    xnli = (assets / "xnli-de-xglue" / "test.txt").read_text(encoding="utf-8").splitlines()
    (folder / "de.tsv").write_text("\n".join(xnli[:12]) + "\n", encoding="utf-8")
    (folder / "fr.tsv").write_text("\n".join(xnli[12:20]) + "\n", encoding="utf-8")
    (folder / "de.conll").write_text("\n".join(line if line != "." else ". O" for line in CONLL) + "\n",
                                     encoding="utf-8")
    tatoeba = assets / "tatoeba-laser-v1"
    for side in ("deu", "eng"):
        lines = (tatoeba / f"tatoeba.deu-eng.{side}").read_text(encoding="utf-8").splitlines()[:30]
        (folder / f"de-en.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, assets):
    return save_tiny_xlmr(tmp_path_factory.mktemp("clf"), assets, xlmlib.SequenceClassifier, labels=NLI)


def test_sequence_table_per_language_and_the_mean(classifier, files, tmp_path):
    model, tok = xlmlib.load(classifier, task="sequence-classification")
    results = xlmlib.evaluate(model, tok, "sequence", [f"de={files / 'de.tsv'}", f"fr={files / 'fr.tsv'}"])
    assert results["task"] == "sequence" and results["metric"] == "accuracy" and list(results["per_lang"]) == ["de", "fr"]
    from xlmlib.train.readers import read_classification

    for lang, n in (("de", 12), ("fr", 8)):  # the table's accuracy is classify's labels against the gold ones
        gold = read_classification(files / f"{lang}.tsv")
        guess = xlmlib.classify(model, tok, [e.text for e in gold], [e.text_pair for e in gold])
        expected = sum(g["label"] == e.label for g, e in zip(guess, gold)) / n
        assert results["per_lang"][lang] == {"accuracy": pytest.approx(expected), "n": n}
    mean = (results["per_lang"]["de"]["accuracy"] + results["per_lang"]["fr"]["accuracy"]) / 2
    assert results["mean"]["accuracy"] == pytest.approx(mean)


def test_the_verb_writes_the_table_and_a_chart(classifier, files, tmp_path):
    out = tmp_path / "results.json"
    done = cli("evaluate", classifier, "--task", "sequence", "--test", f"de={files / 'de.tsv'}", "--out", out)
    assert done.code == 0, done.err
    assert "mean" in done.out and json.loads(out.read_text())["per_lang"]["de"]["n"] == 12
    pytest.importorskip("matplotlib")
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_task_is_scored_by_entity_f1(tmp_path, assets, files):
    folder = save_tiny_xlmr(tmp_path / "tagger", assets, xlmlib.TokenClassifier, labels=NER)
    model, tok = xlmlib.load(folder, task="token-classification")
    results = xlmlib.evaluate(model, tok, "token", {"de": files / "de.conll"})
    guess = xlmlib.tag(model, tok, [["Anna", "wohnt", "in", "Berlin", "."], ["Tom", "Berger", "schläft"]])
    gold = [["B-PER", "O", "O", "B-LOC", "O"], ["B-PER", "I-PER", "O"]]
    expected = xlmlib.entity_metrics(gold, [g["labels"] for g in guess])
    assert results["metric"] == "f1" and results["per_lang"]["de"]["f1"] == pytest.approx(expected["f1"])
    assert results["per_lang"]["de"]["n"] == 2 and set(results["mean"]) == {"f1", "precision", "recall"}


def test_retrieval_both_directions_with_a_language_pair_key(files):
    model, tok = xlmlib.load("xlmlib-mini", task="encoder")
    spec = f"{files / 'de-en.deu'}:{files / 'de-en.eng'}"
    results = xlmlib.evaluate(model, tok, "retrieval", {"de-en": spec}, margin="ratio")
    row = results["per_lang"]["de-en"]
    assert row["n"] == 30 and row["chance"] == pytest.approx(1 / 30)
    assert row["accuracy"] == pytest.approx((row["forward"] + row["backward"]) / 2)


def test_bad_specs_and_labels_are_refused_by_name(classifier, files, tmp_path):
    with pytest.raises(ValueError, match="expected LANG=PATH"):
        parse_tests(["test.tsv"])
    model, tok = xlmlib.load(classifier, task="sequence-classification")
    other = tmp_path / "other.tsv"
    other.write_text("Ein Satz.\tja\nNoch einer.\tnein\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"other.tsv: labels \['ja', 'nein'\] are not among the model's"):
        xlmlib.evaluate(model, tok, "sequence", {"de": other})
    with pytest.raises(ValueError, match="expected SRC_FILE:TGT_FILE"):
        xlmlib.evaluate(model, tok, "retrieval", {"de": files / "de.tsv"})


def test_classify_tag_and_mine_verbs(classifier, files, tmp_path, assets):
    done = cli("classify", "--model", classifier, "Der Hund schläft.", "--pair", "Ein Tier ruht.")
    assert done.code == 0 and done.out.split("\t")[0] in NLI, done.err
    tagger = save_tiny_xlmr(tmp_path / "tagger", assets, xlmlib.TokenClassifier, labels=NER)
    done = cli("tag", "--model", tagger, "Tom wohnt in Paris.")
    assert done.code == 0 and done.out.startswith("Tom/") and " ./" in done.out, done.err  # "." is a word of its own
    pairs = tmp_path / "pairs.tsv"
    done = cli("mine", "--model", "xlmlib-mini", "--src", files / "de-en.deu", "--tgt", files / "de-en.eng",
               "--output", pairs)
    assert done.code == 0, done.err
    rows = [line.split("\t") for line in pairs.read_text(encoding="utf-8").splitlines()]
    scores = [float(r[0]) for r in rows]
    assert len(rows) == 30 and scores == sorted(scores, reverse=True)


def test_finetune_test_items_take_a_language(files, tmp_path, assets):
    folder = save_tiny_xlmr(tmp_path / "tiny", assets)
    done = cli("finetune", "--model", folder, "--train", files / "de.tsv", "--steps", "1", "--batch-size", "4",
               "--test", f"de={files / 'de.tsv'}", f"fr={files / 'fr.tsv'}", "--out", tmp_path / "run", "--no-progress")
    assert done.code == 0, done.err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(results["test"]) == ["de", "fr"] and results["evaluation"]["metric"] == "accuracy"
    assert "mean" in done.out


def test_the_verb_takes_the_model_as_the_other_verbs_do(classifier, files):
    """MODEL or --model (classify, tag and mine take --model); none, or two different ones, is a one-line error."""
    done = cli("evaluate", "--model", classifier, "--task", "sequence", "--test", f"de={files / 'de.tsv'}")
    assert done.code == 0 and "mean" in done.out, done.err
    done = cli("evaluate", "--task", "sequence", "--test", f"de={files / 'de.tsv'}")
    assert done.code == 1 and "no model given" in done.err
    done = cli("evaluate", classifier, "--model", "xlmlib-mini", "--task", "sequence", "--test", f"de={files / 'de.tsv'}")
    assert done.code == 1 and "two models given" in done.err
