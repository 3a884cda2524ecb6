"""QA fine-tuning through the existing entry points (`xlmlib finetune --task qa|qa-beam`, xlmlib.finetune with a
QA model) and the `xlmlib answer` verb, in this process, on tiny random models with the real vocabularies and
questions made from real German Tatoeba sentences by scripts/qa_demo.py's generator (its learning proof runs
there, not here: these tests check the path, not what is learned)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import xlmlib
from xlmlib.train.config import FinetuneConfig
from xlmlib.train.selection import best_so_far

from ..folders import cli, save_tiny_xlm, save_tiny_xlmr

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory, assets):
    """train.json / dev.json: contexts of 6 German sentences, a question per later sentence (its first words),
    the answer its rest; 48-token windows cut most contexts in two or more."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import qa_demo
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    lines = (assets / "tatoeba-laser-v1" / "tatoeba.deu-eng.deu").read_text(encoding="utf-8").splitlines()
    folder = tmp_path_factory.mktemp("squad")
    files = {}
    for name, part in (("train", lines[:60]), ("dev", lines[60:90])):
        data = {"version": "1.1", "data": [{"title": "de", "paragraphs": qa_demo.make_questions(part, 6, 0, name)}]}
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return files


def test_finetune_qa_command_selects_by_f1_and_the_model_answers(squad_files, tmp_path, assets):
    model = save_tiny_xlmr(tmp_path / "tiny", assets, xlmlib.QuestionAnswering)
    out = tmp_path / "run"
    done = cli("finetune", "--task", "qa", "--model", model, "--train", squad_files["train"], "--dev",
               squad_files["dev"], "--test", squad_files["dev"], "--steps", "4", "--eval-every", "2", "--batch-size",
               "8", "--max-len", "48", "--doc-stride", "16", "--out", out, "--no-progress")
    assert done.code == 0, done.err
    assert "best dev f1" in done.out and "exact match" in done.out and "training questions in" in done.err
    results = json.loads((out / "results.json").read_text())
    assert results["best"]["metric"] == "f1" and 0 <= results["best"]["score"] <= 1
    assert set(results["test"][str(squad_files["dev"])]) >= {"exact_match", "f1", "n"}
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "dev_score" in r] == [2, 4] and all("dev_f1" in r for r in logged[1::2])
    trained, tok = xlmlib.load(out / "best", task="question-answering")
    assert tok is not None and trained.new_weights == ()
    preds = tmp_path / "preds.json"
    done = cli("answer", "--model", out / "best", "--input", squad_files["dev"], "--output", preds, "--max-len", "48",
               "--doc-stride", "16")
    assert done.code == 0, done.err
    ids = {qa["id"] for p in json.loads(squad_files["dev"].read_text())["data"][0]["paragraphs"] for qa in p["qas"]}
    assert set(json.loads(preds.read_text())) == ids and "exact match" in done.out
    one = cli("answer", "--model", out / "best", "--question", "Wo ist", "--context", "Tom ist zu Hause. Wo ist Maria?")
    assert one.code == 0 and len(one.out.splitlines()) == 1, one.err


def test_finetune_api_takes_a_qa_model_and_records(squad_files, tmp_path, assets):
    model, tok = xlmlib.load(save_tiny_xlmr(tmp_path / "tiny", assets, xlmlib.QuestionAnswering),
                             task="question-answering")
    records = [{"id": "q1", "question": "Tom ist", "context": "Anna wohnt hier. Tom ist sehr müde.",
                "answers": [{"text": "sehr müde.", "answer_start": 25}]}]
    result = xlmlib.finetune(model, tok, records * 4, dev=squad_files["dev"], steps=2, batch_size=2, max_len=48,
                             doc_stride=16, out=tmp_path / "run", progress=False)
    assert result["best"]["metric"] == "f1" and result["labels"] == [] and result["test"] is None
    with pytest.raises(ValueError, match="answer_start"):  # the reader's checks apply to records too
        xlmlib.finetune(model, tok, [{**records[0], "answers": [{"text": "müde", "answer_start": 0}]}], steps=1,
                        out=tmp_path / "bad", progress=False)


def test_xlm_beam_head_fine_tunes_with_a_language(squad_files, tmp_path, assets):
    model = save_tiny_xlm(tmp_path / "tiny", assets, xlmlib.QuestionAnsweringBeam)
    done = cli("finetune", "--task", "qa-beam", "--model", model, "--train", squad_files["train"], "--dev",
               squad_files["dev"], "--lang", "de", "--steps", "2", "--batch-size", "8", "--max-len", "48",
               "--doc-stride", "16", "--out", tmp_path / "run", "--no-progress")
    assert done.code == 0, done.err
    assert json.loads((tmp_path / "run" / "results.json").read_text())["best"]["metric"] == "f1"


def test_resume_keeps_the_best_score_logged_before(tmp_path):
    """fit_and_select reads the best dev score back from metrics.jsonl (dev_score; a run logged before the
    metric-neutral record has dev_accuracy), so a resumed run keeps OUT/best unless it is beaten."""
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "dev_accuracy": 0.4}\n{"step": 4, "dev_score": 0.7}\n'
                                            '{"step": 6, "dev_score": 0.5}\n')
    best = {"metric": "f1", "score": None, "step": 0}
    assert best_so_far(tmp_path, "f1", best) == 1 and best == {"metric": "f1", "score": 0.7, "step": 4}
    assert FinetuneConfig(task="qa").max_len == 384 and FinetuneConfig().max_len == 128


def test_evaluate_scores_qa_per_language_on_the_given_windows(squad_files, tmp_path, assets):
    """xlmlib.evaluate's QA rows are qa_metrics of predict on the same windows: max_len/doc_stride reach it (48/16
    cut these contexts into several windows, so 384/128 answers differently here), through the verb as well."""
    from xlmlib.qa import predict, qa_metrics
    from xlmlib.qa.squad import read_squad, references

    model, tok = xlmlib.load(save_tiny_xlmr(tmp_path / "tiny", assets, xlmlib.QuestionAnswering),
                             task="question-answering")
    examples, _ = read_squad(squad_files["dev"])
    small = predict(model, tok, examples, max_len=48, doc_stride=16, progress=False)
    assert small != predict(model, tok, examples, progress=False)
    table = xlmlib.evaluate(model, tok, "qa", {"de": squad_files["dev"]}, max_len=48, doc_stride=16)
    assert table["per_lang"]["de"] == qa_metrics(small, references(examples), lang="de")
    assert table["mean"]["f1"] == table["per_lang"]["de"]["f1"]
    done = cli("evaluate", tmp_path / "tiny", "--task", "qa", "--test", f"de={squad_files['dev']}",
               "--max-len", "48", "--doc-stride", "16")
    assert done.code == 0, done.err
    assert f"{table['per_lang']['de']['f1']:.2f}%" in done.out  # QA's F1 is a percentage already
