"""answer() and predict() on tiny random models: equal to transformers' pipeline rules run over transformers'
own model and tokenizer on the same weights (hf_pipeline.py), equal to decoding the model's own per-window
logits, batched or not; the language checks; the beam head; the training mode left as it was."""

import copy
import logging
import math

import pytest
import torch

import xlmlib
from xlmlib.qa import (
    QAExample,
    answer,
    beam_answer,
    pipeline_answers,
    predict,
    qa_metrics,
    references,
    run_qa_answer,
    windows,
)

from ..folders import save_tiny_xlmr
from .hf_pipeline import hf_answer, hf_answers

QUESTIONS = {"de": "Wer hat das gesagt?", "zh": "谁说的？", "ar": "من قال ذلك؟"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, assets):
    """A tiny random XLM-R QuestionAnswering model; its span head scaled by 40 so that scores spread out and
    no two answers tie within float noise. Saved in both layouts: ours and transformers'."""
    folder = tmp_path_factory.mktemp("tiny-qa")
    save_tiny_xlmr(folder / "ours", assets, cls=xlmlib.QuestionAnswering)
    model = xlmlib.QuestionAnswering.from_pretrained(folder / "ours")
    with torch.no_grad():
        model.qa_outputs.weight.mul_(40)
    model.save_pretrained(folder / "hf", format="hf")
    return model, xlmlib.Tokenizer.from_pretrained(folder / "ours"), folder / "hf"


@pytest.fixture(scope="module")
def hf_model(tiny):
    transformers = pytest.importorskip("transformers")
    return transformers.XLMRobertaForQuestionAnswering.from_pretrained(tiny[2]).eval()


def _same_as_transformers(ours, theirs, context):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        # transformers' answers start at the space before the word; ours at the word.
        stripped = b["answer"].lstrip()
        assert a["answer"] == stripped == context[a["start"]:a["end"]]
        assert (a["start"], a["end"]) == (b["start"] + len(b["answer"]) - len(stripped), b["end"])
        assert a["score"] == pytest.approx(b["score"], rel=1e-5)


@pytest.mark.parametrize("lang", ["de", "zh", "ar"])
@pytest.mark.parametrize("options", [
    {"max_len": 64, "doc_stride": 16},
    {"max_len": 64, "doc_stride": 16, "top_k": 3},
    {"max_len": 96, "doc_stride": 40, "top_k": 20, "handle_impossible": True, "max_answer_len": 5},
    {"top_k": 2},  # the defaults, 384 / 128: the contexts still take several windows
])
def test_answer_equals_the_pipeline_rules_in_transformers(tiny, hf_model, hf_xlmr_fast, contexts, lang, options):
    model, tok, _ = tiny
    context, question = contexts[lang], QUESTIONS[lang]
    assert len(windows(tok, question, context, max_len=options.get("max_len", 384),
                       doc_stride=options.get("doc_stride", 128))) > 1
    ours = answer(model, tok, question, context, **options)
    hf_options = {"max_seq_len": options.get("max_len", 384), "doc_stride": options.get("doc_stride", 128),
                  "top_k": options.get("top_k", 1), "max_answer_len": options.get("max_answer_len", 15),
                  "handle_impossible_answer": options.get("handle_impossible", False)}
    theirs = hf_answer(hf_model, hf_xlmr_fast, question, context, **hf_options)
    _same_as_transformers(ours if isinstance(ours, list) else [ours], theirs, context)


def test_many_questions_batched_equal_transformers(tiny, hf_model, hf_xlmr_fast, contexts):
    model, tok, _ = tiny
    langs = ["de", "zh", "ar", "vi"]
    questions, texts = [QUESTIONS.get(lg, "Ai?") for lg in langs], [contexts[lg] for lg in langs]
    ours = answer(model, tok, questions, texts, top_k=2, max_len=80, doc_stride=24, batch_size=7)
    theirs = hf_answers(hf_model, hf_xlmr_fast, questions, texts, top_k=2, max_seq_len=80, doc_stride=24,
                        batch_size=7)
    for a, b, context in zip(ours, theirs, texts):
        _same_as_transformers(a, b, context)


@pytest.fixture(scope="module")
def null_head(tiny, contexts, tmp_path_factory):
    """The tiny model with a span head that points at the first token's state (the mean <s> state over the
    German context's windows, scaled to a logit of about 40 there): "no answer" wins, as a SQuAD v2 head
    would say for an unrelated question."""
    transformers = pytest.importorskip("transformers")
    model, tok, _ = tiny
    model = copy.deepcopy(model)
    with torch.no_grad():
        first = torch.stack([model(torch.tensor([w.input_ids])).last_hidden_state[0, 0]
                             for w in windows(tok, QUESTIONS["de"], contexts["de"], max_len=96, doc_stride=40)])
        h0 = first.mean(0)
        model.qa_outputs.weight.copy_(torch.randn(2, 16, generator=torch.Generator().manual_seed(1)) * 2
                                      + 40 * h0 / (h0 @ h0))
    folder = tmp_path_factory.mktemp("null-head")
    model.save_pretrained(folder, format="hf")
    return model, transformers.XLMRobertaForQuestionAnswering.from_pretrained(folder).eval()


def test_handle_impossible_equals_the_pipeline_rules_in_transformers(tiny, null_head, hf_xlmr_fast, contexts):
    (model, hf_model), tok = null_head, tiny[1]
    for top_k in (1, 3):
        ours = answer(model, tok, QUESTIONS["de"], contexts["de"], top_k=top_k, max_len=96, doc_stride=40,
                      handle_impossible=True)
        theirs = hf_answer(hf_model, hf_xlmr_fast, QUESTIONS["de"], contexts["de"], top_k=top_k, max_seq_len=96,
                           doc_stride=40, handle_impossible_answer=True)
        ours = ours if isinstance(ours, list) else [ours]
        assert ours[0]["answer"] == "" and (ours[0]["start"], ours[0]["end"]) == (0, 0)
        _same_as_transformers(ours, theirs, contexts["de"])
    # Without handle_impossible the same head still answers with a span.
    assert answer(model, tok, QUESTIONS["de"], contexts["de"], max_len=96, doc_stride=40)["answer"]


def test_answer_decodes_the_models_own_logits_batched(tiny, contexts):
    model, tok, _ = tiny
    questions = [QUESTIONS["de"], "Was?", QUESTIONS["zh"]]
    texts = [contexts["de"], contexts["de"][:300], contexts["zh"]]
    batched = answer(model, tok, questions, texts, top_k=2, max_len=64, doc_stride=16, batch_size=5)
    assert len(batched) == 3
    for question, context, got in zip(questions, texts, batched):
        starts, ends, offsets = [], [], []
        for w in windows(tok, question, context, max_len=64, doc_stride=16):  # one unpadded forward each
            out = model(torch.tensor([w.input_ids]))
            starts.append(out.start_logits[0].detach().numpy())
            ends.append(out.end_logits[0].detach().numpy())
            offsets.append(w.offsets)
        expected = pipeline_answers(starts, ends, offsets, context, top_k=2)
        assert [(a["answer"], a["start"], a["end"]) for a in got] == [(a["answer"], a["start"], a["end"])
                                                                    for a in expected]
        assert [a["score"] for a in got] == pytest.approx([a["score"] for a in expected], rel=1e-5)
        for a in got:
            assert a["answer"] == context[a["start"]:a["end"]] and not a["answer"][:1].isspace()
    single = answer(model, tok, questions[1], texts[1], max_len=64, doc_stride=16)
    assert isinstance(single, dict) and single["answer"] == batched[1][0]["answer"]


def test_answer_keeps_the_models_mode_and_checks_its_arguments(tiny, caplog):
    model, tok, _ = tiny
    model.train()
    try:
        first = answer(model, tok, "Wer?", "Anna sagte das gestern in Berlin.")
        assert answer(model, tok, "Wer?", "Anna sagte das gestern in Berlin.") == first  # no dropout
        assert model.training
    finally:
        model.eval()
    with caplog.at_level(logging.WARNING):  # the rule of every entry point (xlmlib/languages.py), once per code
        assert answer(model, tok, "Wer?", "Anna sagte das gestern in Berlin.", lang="qa-test-code") == first
    assert "lang 'qa-test-code' has no effect" in caplog.text
    with pytest.raises(ValueError, match="context 0 is empty"):
        answer(model, tok, "Wer?", " ")
    with pytest.raises(ValueError, match="top_k and max_answer_len must be >= 1"):
        answer(model, tok, "Wer?", "Anna.", top_k=0)
    with pytest.raises(TypeError, match="QuestionAnswering or QuestionAnsweringBeam model, got MaskedLM"):
        answer(xlmlib.MaskedLM(model.config), tok, "Wer?", "Anna.")


def test_predict_is_run_qa_over_the_models_logits(tiny, contexts, tmp_path):
    model, tok, _ = tiny
    context = contexts["de"]
    words = context.split(" ")
    examples = [QAExample("a", "Wer?", context, ((words[0], 0),)), QAExample("b", "Was?", context[:200], (), True)]
    got = predict(model, tok, examples, max_len=64, doc_stride=16, progress=False)
    assert set(got) == {"a", "b"}
    for example in examples:
        starts, ends, offsets = [], [], []
        for w in windows(tok, example.question, example.context, max_len=64, doc_stride=16):
            out = model(torch.tensor([w.input_ids]))
            starts.append(out.start_logits[0].detach().numpy())
            ends.append(out.end_logits[0].detach().numpy())
            offsets.append(w.offsets)
        assert got[example.id] == run_qa_answer(starts, ends, offsets, example.context)["text"]
        v2 = run_qa_answer(starts, ends, offsets, example.context, version_2=True, null_threshold=-50.0)["text"]
        assert predict(model, tok, [example], max_len=64, doc_stride=16, version_2=True, null_threshold=-50.0,
                       progress=False)[example.id] == v2 == ""  # a threshold that far down always says no answer
    scores = qa_metrics(got, references(examples))
    assert scores["n"] == 2 and scores["NoAns_total"] == 1


@pytest.fixture(scope="module")
def tiny_xlm(assets):
    """Tiny XNLI-15-shaped XLM models (language embeddings) with the released XNLI-15 BPE vocabulary."""
    cfg = xlmlib.ModelConfig.from_preset("xlm-mlm-xnli15-1024").replace(
        n_layers=1, dim=16, n_heads=2, ffn_dim=64, dropout=0.0, attention_dropout=0.0, start_n_top=3, end_n_top=2)
    torch.manual_seed(0)
    simple, beam = xlmlib.QuestionAnswering(cfg), xlmlib.QuestionAnsweringBeam(cfg)
    simple.reset_parameters()
    beam.reset_parameters()
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="xnli_15")
    return simple.eval(), beam.eval(), tok


def test_xlm_checks_the_language_against_the_model(tiny_xlm, contexts):
    simple, _, tok = tiny_xlm
    context = contexts["de"][:400]
    with pytest.raises(ValueError, match="needs a language: pass lang= one of ar, bg, de"):
        answer(simple, tok, "Wer?", context)
    with pytest.raises(ValueError, match="unknown language 'xx': this model knows ar, bg, de"):
        answer(simple, tok, "Wer?", context, lang="xx")
    got = answer(simple, tok, "Wer?", context, lang="de", top_k=2, max_len=48, doc_stride=16)
    assert all(a["answer"] == context[a["start"]:a["end"]] for a in got) and got[0]["score"] >= got[1]["score"]


def test_the_beam_head_decodes_by_run_qa_beam_search(tiny_xlm, contexts):
    _, beam, tok = tiny_xlm
    context = contexts["de"][:500]
    ws = windows(tok, "Wer?", context, lang="de", max_len=48, doc_stride=16)
    assert len(ws) > 1
    rows = []
    for w in ws:
        p_mask = torch.ones(1, len(w))
        p_mask[0, [0, *w.context_tokens]] = 0.0
        out = beam(torch.tensor([w.input_ids]), langs=torch.tensor([w.langs]), p_mask=p_mask,
                   cls_index=torch.zeros(1, dtype=torch.long))
        rows.append((out.start_top_log_probs[0].detach().numpy(), out.start_top_index[0].numpy(),
                     out.end_top_log_probs[0].detach().numpy(), out.end_top_index[0].numpy(),
                     float(out.cls_logits[0].detach())))
    expected = beam_answer(*zip(*rows), [w.offsets for w in ws], context, max_answer_len=15)
    got = answer(beam, tok, "Wer?", context, lang="de", top_k=3, max_len=48, doc_stride=16)
    assert [(a["answer"], a["start"], a["end"]) for a in got] == [
        (c["text"], c["start"], c["end"]) for c in expected["nbest"][:3]]
    probabilities = [math.exp(c["score"]) for c in expected["nbest"][:3]]
    assert [a["score"] for a in got] == pytest.approx(probabilities, rel=1e-5)
    example = QAExample("x", "Wer?", context, ((context[:5], 0),))
    assert predict(beam, tok, [example], lang="de", max_len=48, doc_stride=16, progress=False) == {
        "x": beam_answer(*zip(*rows), [w.offsets for w in ws], context)["text"]}
