"""The SQuAD-format reader: what it keeps, the errors that name the file and the question, the skip report,
the references for qa_metrics and the predictions file."""

import json
import logging

import pytest

from xlmlib.qa import (
    QAExample,
    SquadFormatError,
    examples_from_records,
    read_squad,
    references,
    write_predictions,
)

CONTEXT = "Paris is the capital of France. Berlin is the capital of Germany."


def _file(tmp_path, qas, name="dev.json", context=CONTEXT):
    path = tmp_path / name
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "Capitals", "paragraphs": [
        {"context": context, "qas": qas}]}]}, ensure_ascii=False), encoding="utf-8")
    return path


def _qa(qid, text="Paris", start=0, **extra):
    return {"id": qid, "question": "Which city?", "answers": [{"text": text, "answer_start": start}], **extra}


def test_reads_v1_and_v2_questions(tmp_path):
    qas = [_qa("q1"), {"id": "q2", "question": "What is Berlin?", "answers": [
               {"text": "the capital of Germany", "answer_start": 42}, {"text": "capital", "answer_start": 46}]},
           {"id": "q3", "question": "Which river?", "answers": [], "is_impossible": True,
            "plausible_answers": [{"text": "Paris", "answer_start": 0}]}]
    examples, report = read_squad(_file(tmp_path, qas))
    assert examples[0] == QAExample("q1", "Which city?", CONTEXT, (("Paris", 0),), False, "Capitals")
    assert examples[1].answer_texts == ["the capital of Germany", "capital"]
    assert examples[2].is_impossible and examples[2].answers == ()  # plausible_answers are not answers
    assert (report.n_articles, report.n_paragraphs, report.n_questions, report.n_unanswerable) == (1, 1, 3, 1)
    assert report.skipped == {} and "nothing skipped" in str(report)
    assert references(examples) == {"q1": ["Paris"], "q2": ["the capital of Germany", "capital"], "q3": []}


@pytest.mark.parametrize("qa, message", [
    (_qa("q7", start=1), (r"question 'q7' \(data\[0\]\.paragraphs\[0\]\.qas\[1\]\): answers\[0\]\.answer_start 1 "
                          r"does not point at the answer text 'Paris': context\[1:6\] is 'aris '")),
    (_qa("q7", start=500), "question 'q7'.*answer_start 500 .*outside the context"),
    ({"id": "q7", "answers": []}, "question 'q7'.*'question' is missing, expected str"),
    ({"question": "Where?", "answers": []}, r"data\[0\]\.paragraphs\[0\]\.qas\[1\]: 'id' is missing"),
    (_qa("q1"), "question 'q1'.*the id 'q1' was used by an earlier question"),
    ({"id": "q7", "question": "Where?", "answers": []}, "question 'q7'.*'answers' is empty and is_impossible"),
    (_qa("q7", is_impossible=True), "question 'q7'.*is_impossible is true but it has 1 answers"),
    ({"id": "q7", "question": "Where?", "answers": [{"text": "Paris"}]}, "answer_start is missing"),
])
def test_errors_name_the_file_and_the_question(tmp_path, qa, message):
    path = _file(tmp_path, [_qa("q1"), qa])
    with pytest.raises(SquadFormatError, match=message) as err:
        read_squad(path)
    assert str(err.value).startswith(f"{path}: ")


def test_a_file_that_is_not_squad(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"questions": []}', encoding="utf-8")
    with pytest.raises(SquadFormatError, match=f"{path}: expected a JSON object with a 'data' list"):
        read_squad(path)
    path.write_text("{oops", encoding="utf-8")
    with pytest.raises(SquadFormatError, match="not a JSON file"):
        read_squad(path)
    with pytest.raises(FileNotFoundError, match="SQuAD file not found"):
        read_squad(tmp_path / "missing.json")


def test_skip_counts_every_question_left_out_with_its_reason(tmp_path, caplog):
    qas = [_qa("ok1"), _qa("bad1", start=3), _qa("bad2", start=4), _qa("ok1"),
           {"id": "bad3", "answers": []}, _qa("ok2", text="Berlin", start=32)]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"data": [
        {"title": "A", "paragraphs": [{"context": CONTEXT, "qas": qas},
                                      {"qas": [_qa("lost1"), _qa("lost2")]}]},  # no context: 2 questions
        {"title": "B"}]}), encoding="utf-8")  # no paragraphs at all
    with caplog.at_level(logging.WARNING, logger="xlmlib.qa.squad"):
        examples, report = read_squad(path, on_error="skip")
    assert [e.id for e in examples] == ["ok1", "ok2"]
    assert report.skipped == {"answer_start that does not point at the answer text": 2, "duplicate id": 1,
                              "missing or mistyped 'question'": 1, "paragraph without a 'context' string": 2,
                              "article without a 'paragraphs' list": 1}
    assert report.n_skipped == 7 and report.n_questions == 2
    assert report.skipped_ids["answer_start that does not point at the answer text"] == [
        "question 'bad1' (data[0].paragraphs[0].qas[1])", "question 'bad2' (data[0].paragraphs[0].qas[2])"]
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "skipped 7" in logged[0] and "duplicate id" in logged[0]


def test_on_error_is_checked(tmp_path):
    with pytest.raises(ValueError, match="on_error must be one of"):
        read_squad(_file(tmp_path, [_qa("q1")]), on_error="ignore")


def test_write_predictions_is_the_official_format(tmp_path):
    path = write_predictions(tmp_path / "out" / "predictions.json", {"q1": "Paris", "q2": "", "q3": "北京"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"q1": "Paris", "q2": "", "q3": "北京"}
    assert not [p for p in path.parent.iterdir() if p.name != "predictions.json"]  # no temporary file left
    with pytest.raises(TypeError, match="str ids to str answers"):
        write_predictions(tmp_path / "p.json", {"q1": None})


def test_flat_records_in_both_answer_layouts():
    records = [{"id": "a", "question": "Which city?", "context": CONTEXT,
                "answers": [{"text": "Paris", "answer_start": 0}]},
               {"id": "b", "question": "Which?", "context": CONTEXT,  # Hugging Face datasets' columns layout
                "answers": {"text": ["Berlin", "Berlin is"], "answer_start": [32, 32]}},
               {"id": "c", "question": "Which river?", "context": CONTEXT, "answers": [], "is_impossible": True}]
    examples = examples_from_records(records, source="train")
    assert [e.answers for e in examples] == [(("Paris", 0),), (("Berlin", 32), ("Berlin is", 32)), ()]
    assert examples_from_records(examples) == examples  # QAExamples pass through
    with pytest.raises(SquadFormatError,
                       match=r"train\[1\] \(question 'b'\): answers\[0\]\.answer_start 33 does not"):
        examples_from_records([records[0], {**records[1], "answers": {"text": ["Berlin"], "answer_start": [33]}}],
                              source="train")
    with pytest.raises(SquadFormatError, match=r"train\[0\] \(question 'a'\): 'context' is missing"):
        examples_from_records([{"id": "a", "question": "Q?", "answers": []}], source="train")
