"""Windows over long contexts through our tokenizers on the real vocabularies: window starts and overlaps,
the question never cut, offsets that map back to the context, labels on the answer tokens, XLM's framing
and language ids, collate, and the XLM-R windows' parity with transformers' fast tokenizer
(truncation="only_second", stride, return_overflowing_tokens) on the same vocabulary."""

import itertools

import pytest
import torch

from xlmlib.qa import QAExample, collate, example_windows, window_starts, windows

QUESTION = "Wer hat das gesagt, und warum?"


def test_window_starts_hand_worked():
    # C = 4 context tokens per window, stride 2: starts 0, 2, 4, 6 for 10 tokens (6 + 4 reaches the end).
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(4, 4, 2) == [0]  # fits: one window
    assert window_starts(5, 4, 2) == [0, 2]
    assert window_starts(0, 4, 2) == [0]
    assert window_starts(9, 5, 0) == [0, 5]  # no overlap


@pytest.mark.parametrize("max_len, stride", [(384, 128), (64, 16), (100, 50)])
@pytest.mark.parametrize("lang", ["de", "zh", "ar"])
def test_xlmr_windows_equal_transformers_overflow(xlmr_tok, hf_xlmr_fast, contexts, lang, max_len, stride):
    context = contexts[lang]
    ours = windows(xlmr_tok, QUESTION, context, max_len=max_len, doc_stride=stride)
    theirs = hf_xlmr_fast(QUESTION, context, truncation="only_second", max_length=max_len, stride=stride,
                          return_overflowing_tokens=True, return_offsets_mapping=True)
    assert len(ours) == len(theirs["input_ids"]) > 1
    for k, w in enumerate(ours):
        assert w.input_ids == theirs["input_ids"][k]
        assert w.sequence_ids == theirs.sequence_ids(k)
        for offset, (a, b), part in zip(w.offsets, theirs["offset_mapping"][k], theirs.sequence_ids(k)):
            if part != 1:
                assert offset is None
                continue
            # transformers' ▁word offsets start at the space before the word; ours at the word (a lone ▁
            # piece stands for the space itself in both).
            while a < b - 1 and context[a].isspace():
                a += 1
            assert offset == (a, b)


def test_windows_overlap_by_doc_stride_and_keep_the_question(xlmr_tok, contexts):
    context = contexts["vi"]
    q_ids = xlmr_tok.encode(QUESTION, add_special_tokens=False)
    ws = windows(xlmr_tok, QUESTION, context, max_len=80, doc_stride=20)
    capacity = 80 - len(q_ids) - 4  # <s> q </s></s> c </s>
    assert len(ws) > 3
    for w in ws:
        assert w.input_ids[:len(q_ids) + 3] == [0, *q_ids, 2, 2] and w.input_ids[-1] == 2
        assert w.sequence_ids[:len(q_ids) + 3] == [None, *[0] * len(q_ids), None, None]
    for a, b in itertools.pairwise(ws):
        assert len(a.context_tokens) == capacity
        shared_a = [a.offsets[i] for i in a.context_tokens][-20:]
        shared_b = [b.offsets[i] for i in b.context_tokens][:20]
        assert shared_a == shared_b
    every = sorted({w.offsets[i] for w in ws for i in w.context_tokens})
    full = xlmr_tok(context, return_offsets=True, return_tensors=None, padding=False, truncation=False)
    assert every == sorted(set(full.offsets[1:-1]))  # all context tokens covered, none invented


def test_offsets_map_back_to_the_context(xlmr_tok, xlm_enfr, contexts):
    for lang in ("de", "zh", "hi"):
        context = contexts[lang]
        for w in windows(xlmr_tok, QUESTION, context, max_len=128, doc_stride=32):
            for i in w.context_tokens:
                a, b = w.offsets[i]
                piece = xlmr_tok.id_to_token(w.input_ids[i])
                if w.input_ids[i] != xlmr_tok.unk_id and piece != "\u2581":
                    # SentencePiece's own normalisation of the characters gives the piece (its ▁ aside).
                    normal = xlmr_tok.sp.normalize(context[a:b]).replace("\u2581", "")
                    assert normal == piece.replace("\u2581", ""), (context[a:b], piece)
                    assert not context[a].isspace()
    context = contexts["en"]
    for w in windows(xlm_enfr, "Who said that?", context, lang="en", max_len=64, doc_stride=16):
        for i in w.context_tokens:
            a, b = w.offsets[i]
            piece = xlm_enfr.id_to_token(w.input_ids[i]).removesuffix("</w>")
            if piece not in ("&apos;", "&quot;"):  # Moses escapes quotes
                # Contains, not equals: where Moses moves a character (`"stop".` -> `stop."`) the span of the
                # token widens to keep its own characters (tokenize/align.py).
                assert piece in context[a:b] and len(context[a:b]) <= len(piece) + 1, (context[a:b], piece)


def test_question_is_never_cut_unless_asked(xlmr_tok, contexts):
    long_question = " ".join(["Warum"] * 40)
    q_len = len(xlmr_tok.encode(long_question, add_special_tokens=False))
    ws = windows(xlmr_tok, long_question, contexts["de"], max_len=128, doc_stride=16)
    assert all(w.sequence_ids.count(0) == q_len for w in ws)
    cut = windows(xlmr_tok, long_question, contexts["de"], max_len=128, doc_stride=16, max_question_len=10)
    assert all(w.sequence_ids.count(0) == 10 for w in cut) and len(cut) < len(ws)
    with pytest.raises(ValueError, match=r"question 0 has \d+ tokens, which leaves \d+ context tokens.*"
                                         "max_question_len"):
        windows(xlmr_tok, long_question, contexts["de"], max_len=q_len + 4 + 16, doc_stride=16)  # C = stride
    assert len(windows(xlmr_tok, long_question, contexts["de"], max_len=q_len + 4 + 17, doc_stride=16)) > 10


def _examples(context):
    """Answers at the start, in the middle and at the end of a long context, and one unanswerable."""
    words = context.split(" ")
    middle = len(" ".join(words[:len(words) // 2])) + 1
    picks = [(0, words[0] + " " + words[1]), (middle, " ".join(words[len(words) // 2:len(words) // 2 + 3])),
             (len(context) - len(words[-1]), words[-1])]
    out = [QAExample(f"q{k}", QUESTION, context, ((text, start),)) for k, (start, text) in enumerate(picks)]
    return out + [QAExample("none", QUESTION, context, (), True)]


@pytest.mark.parametrize("lang", ["de", "ar", "vi"])
def test_labels_land_on_the_answer_tokens(xlmr_tok, contexts, lang):
    context = contexts[lang]
    examples = _examples(context)
    ws = example_windows(xlmr_tok, examples, max_len=96, doc_stride=32)
    for k, example in enumerate(examples):
        mine = [w for w in ws if w.example == k]
        labelled = [w for w in mine if not w.is_impossible]
        if example.is_impossible:
            assert all((w.start_position, w.end_position) == (0, 0) for w in mine) and not labelled
            continue
        assert labelled, example.id  # the answer lies wholly in at least one window
        text, start = example.answers[0]
        for w in mine:
            if w.is_impossible:
                assert (w.start_position, w.end_position) == (0, 0)
                spans = [w.offsets[i] for i in w.context_tokens]
                assert spans[0][0] > start or spans[-1][1] < start + len(text)  # not wholly inside
                continue
            a, b = w.offsets[w.start_position][0], w.offsets[w.end_position][1]
            assert w.sequence_ids[w.start_position] == 1 and w.sequence_ids[w.end_position] == 1
            assert context[a:b] == text  # the answers are whole words: the tokens cover exactly them


def test_a_label_inside_a_word_takes_the_tokens_that_hold_it(xlmr_tok):
    context = "Die Hauptstadt heißt Berlin."
    # "stadt" is inside the piece(s) of "Hauptstadt": the labels hold it; their span covers at least it.
    [w] = example_windows(xlmr_tok, [QAExample("a", "Was?", context, (("stadt", 9),))])
    a, b = w.offsets[w.start_position][0], w.offsets[w.end_position][1]
    assert a <= 9 and b >= 14 and w.start_position <= w.end_position and not w.is_impossible


def test_xlm_framing_and_language_ids(xlm_tok, contexts):
    context = contexts["de"]
    q_ids = xlm_tok.encode("Wer hat das gesagt?", lang="de", add_special_tokens=False)
    ws = windows(xlm_tok, "Wer hat das gesagt?", context, lang="de", max_len=64, doc_stride=16)
    capacity = 64 - len(q_ids) - 3  # <s> q </s> c </s>
    assert len(ws) > 2
    for w in ws:
        assert w.input_ids[:len(q_ids) + 2] == [0, *q_ids, 1] and w.input_ids[-1] == 1
        assert w.langs == [xlm_tok.lang2id["de"]] * len(w)
    assert all(len(w.context_tokens) == capacity for w in ws[:-1])
    with pytest.raises(ValueError, match="pass lang= one of"):
        windows(xlm_tok, "Wer?", context)
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        windows(xlm_tok, "Wer?", context, lang="xx")


def test_many_questions_one_context_and_example_index(xlmr_tok, contexts):
    ws = windows(xlmr_tok, ["Wer?", "Was genau?"], contexts["de"], max_len=128, doc_stride=32)
    per = [sum(w.example == k for w in ws) for k in range(2)]
    assert per[0] >= per[1] > 1 and sum(per) == len(ws)
    with pytest.raises(ValueError, match="2 questions but 3 contexts"):
        windows(xlmr_tok, ["a", "b"], ["x", "y", "z"])


def test_collate_pads_and_carries_labels(xlmr_tok, xlm_tok, contexts):
    ws = example_windows(xlmr_tok, _examples(contexts["de"])[:2], max_len=96, doc_stride=32)
    batch = collate(ws, xlmr_tok.pad_id)
    lengths = [len(w) for w in ws]
    assert batch["input_ids"].shape == (len(ws), max(lengths)) and "langs" not in batch
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["input_ids"][batch["attention_mask"] == 0] == xlmr_tok.pad_id).all()
    starts, ends = batch["labels"]
    assert starts.tolist() == [w.start_position for w in ws] and ends.tolist() == [w.end_position for w in ws]
    beam = collate(ws, xlmr_tok.pad_id, beam=True)
    assert beam["cls_index"].tolist() == [0] * len(ws) and len(beam["labels"]) == 3
    assert beam["labels"][2].tolist() == [float(w.is_impossible) for w in ws]
    for row, w in enumerate(ws):
        allowed = {0, *w.context_tokens}
        assert [i for i in range(beam["p_mask"].shape[1]) if beam["p_mask"][row, i] == 0] == sorted(allowed)
    xlm = collate(windows(xlm_tok, ["Wer?", "Wer hat das gesagt?"], contexts["de"][:200], lang="de"), 2)
    assert torch.equal(xlm["langs"], torch.full_like(xlm["input_ids"], xlm_tok.lang2id["de"]))
    assert "labels" not in xlm
