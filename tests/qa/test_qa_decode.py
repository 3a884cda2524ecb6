"""The three span decoders on hand-worked cases: tiny windows whose logits are logarithms of chosen weights,
so every probability and score below is a fraction worked out by hand (written next to each case).

Layout of a window: 0 <s>, 1-2 question, 3-4 </s></s>, then context tokens, then </s>. Question and special
tokens get high logits (7.0) on purpose: the pipeline rules must mask them. NEG (-30) stands for a weight of
about 1e-13, negligible at the tolerance used (relative 1e-6: the scores are float32)."""

import math

import numpy as np
import pytest

from xlmlib.qa import beam_answer, pipeline_answers, run_qa_answer

NEG = -30.0
HIGH = 7.0
APPROX = {"rel": 1e-6}  # float32 arithmetic, as transformers computes it


def window(context_spans, start_weights, end_weights):
    """(start logits, end logits, offsets): weights for token 0 and each context token (None = NEG)."""
    offsets = [None, None, None, None, None, *context_spans, None]
    def logits(weights):
        own = [math.log(w) if w else NEG for w in weights]
        return np.array([own[0], HIGH, HIGH, HIGH, HIGH, *own[1:], HIGH], dtype=np.float32)
    return logits(start_weights), logits(end_weights), offsets


# "Anna met Bob." -> Anna (0,4), met (5,8), Bob (9,12), "." (12,13): "Bob." is one whitespace word.
ANNA = "Anna met Bob."
ANNA_SPANS = [(0, 4), (5, 8), (9, 12), (12, 13)]
# start weights: <s> 2, Anna 1, met 0, Bob 5, "." 0 -> p = 1/4, 1/8, 0, 5/8, 0
# end weights:   <s> 3, Anna 0, met 0, Bob 4, "." 1 -> p = 3/8, 0, 0, 1/2, 1/8
ONE = window(ANNA_SPANS, [2, 1, 0, 5, 0], [3, 0, 0, 4, 1])


def decode(win, **options):
    start, end, offsets = zip(*win) if isinstance(win, list) else ([win[0]], [win[1]], [win[2]])
    return pipeline_answers(list(start), list(end), list(offsets), options.pop("context", ANNA), **options)


def test_pipeline_one_window_words_and_merging():
    # Spans: (Bob,Bob) 5/8*1/2 = 0.3125 and (Bob,".") 5/8*1/8 = 0.078125 are both the word "Bob." -> merged
    # 0.390625; (Anna,Bob) 1/8*1/2 = 0.0625 and (Anna,".") 1/8*1/8 = 0.015625 -> "Anna met Bob." 0.078125.
    [best] = decode(ONE)
    assert best == {"answer": "Bob.", "start": 9, "end": 13, "score": pytest.approx(0.390625, **APPROX)}
    two = decode(ONE, top_k=2)
    assert [(a["answer"], a["start"], a["end"]) for a in two] == [("Bob.", 9, 13), ("Anna met Bob.", 0, 13)]
    assert two[1]["score"] == pytest.approx(0.078125, **APPROX)


def test_pipeline_handle_impossible():
    # null = p_start[0] * p_end[0] = 1/4 * 3/8 = 0.09375: between "Bob." and "Anna met Bob.".
    out = decode(ONE, top_k=3, handle_impossible=True)
    assert [a["answer"] for a in out] == ["Bob.", "", "Anna met Bob."]
    assert out[1] == {"answer": "", "start": 0, "end": 0, "score": pytest.approx(0.09375, **APPROX)}
    # Without handle_impossible the first token still takes its share of the softmax, and no "" appears.
    assert "" not in [a["answer"] for a in decode(ONE, top_k=3)]


def test_pipeline_without_word_alignment_uses_the_tokens_offsets():
    # Nothing merges: (Bob,Bob) "Bob" 0.3125, (Bob,".") "Bob." 0.078125, (Anna,Bob) "Anna met Bob" 0.0625.
    out = decode(ONE, top_k=3, align_to_words=False)
    assert [(a["answer"], a["score"]) for a in out] == [
        ("Bob", pytest.approx(0.3125, **APPROX)), ("Bob.", pytest.approx(0.078125, **APPROX)),
        ("Anna met Bob", pytest.approx(0.0625, **APPROX))]


def test_pipeline_max_answer_len():
    # max_answer_len 1 keeps only one-token spans: (Bob,Bob) 0.3125, and (".",".") ~0 merging into "Bob.".
    [best] = decode(ONE, max_answer_len=1)
    assert best["answer"] == "Bob." and best["score"] == pytest.approx(0.3125, **APPROX)


# "xx yy zz ww" in two windows sharing yy zz (doc_stride 2): W1 = xx yy zz, W2 = yy zz ww.
XY = "xx yy zz ww"
W1 = window([(0, 2), (3, 5), (6, 8)], [4, 2, 1.5, 0.5], [4, 1, 2, 1])
# W1: p_start = 1/2, 1/4, 3/16, 1/16; p_end = 1/2, 1/8, 1/4, 1/8. Spans: (x,x) 1/32, (x,y) 1/16, (x,z) 1/32,
#     (y,y) 3/64, (y,z) 3/128, (z,z) 1/128. Null 1/4.
W2 = window([(3, 5), (6, 8), (9, 11)], [0.5, 2, 0.5, 5], [1, 2, 0, 5])
# W2: p_start = 1/16, 1/4, 1/16, 5/8; p_end = 1/8, 1/4, 0, 5/8. Spans: (w,w) 25/64, (y,w) 5/32, (y,y) 1/16,
#     (z,w) 5/128, the rest ~0. Null 1/128.


def test_pipeline_several_windows_best_in_the_second_and_merged_across_windows():
    out = decode([W1, W2], context=XY, top_k=4)
    # "yy" is in both windows: 3/64 + 1/16 = 7/64 = 0.109375, above "xx yy" 1/16.
    assert [(a["answer"], a["start"], a["end"]) for a in out] == [
        ("ww", 9, 11), ("yy zz ww", 3, 11), ("yy", 3, 5), ("xx yy", 0, 5)]
    assert [a["score"] for a in out] == pytest.approx([25 / 64, 5 / 32, 7 / 64, 1 / 16], **APPROX)
    # The null score is the minimum over the windows: 1/128.
    last = decode([W1, W2], context=XY, top_k=20, handle_impossible=True)[-1]
    assert last["answer"] == "" and last["score"] == pytest.approx(1 / 128, **APPROX)


def test_pipeline_takes_only_2_top_k_plus_10_spans_per_window():
    # One word "abcdef" of six one-character tokens, uniform p_start = p_end = 1/6 (<s> at NEG): all 21 band
    # spans score 1/36 and all widen to the same word, so the merged score counts how many spans were taken:
    # 2*1+10 = 12 for top_k 1 (12/36), 14 for top_k 2; without word alignment top_k spans, each its own text.
    spans = [(i, i + 1) for i in range(6)]
    win = window(spans, [0, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1])
    [one] = decode(win, context="abcdef")
    assert one["answer"] == "abcdef" and one["score"] == pytest.approx(12 / 36, **APPROX)
    assert decode(win, context="abcdef", top_k=2)[0]["score"] == pytest.approx(14 / 36, **APPROX)
    tokens = decode(win, context="abcdef", top_k=3, align_to_words=False)
    assert [a["answer"] for a in tokens] == ["a", "ab", "abc"]  # equal scores keep (start, end) order


def test_pipeline_words_cut_by_the_window_edge_keep_their_characters_inside():
    # "abcdef ghi" with the word abcdef in two tokens; this window starts at "def" (its first half is in an
    # earlier window). Word alignment widens within the window only: "def ghi", not "abcdef ghi".
    win = window([(3, 6), (7, 10)], [0, 1, 0], [0, 0, 1])  # p_start(def) ~ 1, p_end(ghi) ~ 1
    [best] = decode(win, context="abcdef ghi")
    assert (best["answer"], best["start"], best["end"]) == ("def ghi", 3, 10)


def test_pipeline_padding_beyond_the_offsets_is_ignored():
    start, end, offsets = ONE
    padded = [np.concatenate([start, [50.0, 50.0]])], [np.concatenate([end, [50.0, 50.0]])]
    assert decode(ONE) == pipeline_answers(*padded, [offsets], ANNA)


# -- run_qa ---------------------------------------------------------------------------------------------------
def run_qa_window(start_context, end_context, first=(1.0, 1.5)):
    """Raw logits: token 0 = first, question 9.0 / 8.0 (taking top-n places), context as given."""
    start = np.array([first[0], 9.0, 9.0, 0, 0, *start_context, 0], dtype=np.float32)
    end = np.array([first[1], 8.0, 8.0, 0, 0, *end_context, 0], dtype=np.float32)
    return start, end, [None] * 5 + ANNA_SPANS + [None]


# Anna met Bob . : start 2, -1, 3, 0.5; end -2, 0, 2.5, 1. Pairs: Bob-Bob 5.5 (best), Anna-Bob 4.5, Bob-. 4.0,
# Anna-. 3.0, Anna-met 2.0, met-Bob 1.5, .-. 1.5, Anna-Anna 0, met-. 0, met-met -1.
RQ = run_qa_window([2.0, -1.0, 3.0, 0.5], [-2.0, 0.0, 2.5, 1.0])


def rq(wins, **options):
    start, end, offsets = zip(*wins)
    return run_qa_answer(list(start), list(end), list(offsets), ANNA, **options)


def test_run_qa_v1_best_span_and_nbest():
    out = rq([RQ])
    assert (out["text"], out["start"], out["end"], out["score"]) == ("Bob", 9, 12, 5.5)
    assert [c["text"] for c in out["nbest"][:4]] == ["Bob", "Anna met Bob", "Bob.", "Anna met Bob."]
    assert len(out["nbest"]) == 10 and out["null_score"] == 2.5  # 1.0 + 1.5
    assert rq([RQ], max_answer_len=1)["nbest"][1]["text"] == "."  # then only one-token spans: "." 1.5


def test_run_qa_question_tokens_take_top_n_places():
    # The two question tokens (9.0 / 8.0) hold the first two places of both top-n lists.
    # n_best 4: starts {q, q, Bob 3, Anna 2}, ends {q, q, Bob 2.5, <s> 1.5}: Bob-Bob 5.5, Anna-Bob 4.5 (<s> is
    # not context). n_best 3: only Bob-Bob. n_best 2: no context token at all -> run_qa's "empty", here "".
    assert [c["text"] for c in rq([RQ], n_best=4)["nbest"]] == ["Bob", "Anna met Bob"]
    assert [c["text"] for c in rq([RQ], n_best=3)["nbest"]] == ["Bob"]
    out = rq([RQ], n_best=2)
    assert (out["text"], out["nbest"]) == ("", [])


def test_run_qa_v2_null_threshold():
    # null 2.5 - 5.5 = -3 <= 0: the span.
    assert rq([RQ], version_2=True)["text"] == "Bob"
    # token 0 at 5 + 4 = 9: null - best = 3.5 > 0 -> "", unless the threshold is above 3.5.
    high_null = run_qa_window([2.0, -1.0, 3.0, 0.5], [-2.0, 0.0, 2.5, 1.0], first=(5.0, 4.0))
    out = rq([high_null], version_2=True)
    assert out["text"] == "" and out["null_score"] == 9.0 and out["nbest"][0]["text"] == ""
    assert rq([high_null], version_2=True, null_threshold=4.0)["text"] == "Bob"
    # Over two windows the null score is the minimum (2.5), so the span wins again.
    assert rq([high_null, RQ], version_2=True)["text"] == "Bob"


def test_run_qa_best_window_is_not_the_first():
    low = run_qa_window([0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.2, 0.0])  # best there: Bob-Bob 0.7
    out = rq([low, RQ])
    assert out["text"] == "Bob" and out["score"] == 5.5


# -- beam head ------------------------------------------------------------------------------------------------
# Two starts (ranks: 0 = Anna at token 5, p 0.5; 1 = Bob at token 7, p 0.4) and two ends per start, laid out as
# the head does (flat = end rank * 2 + start rank): flat 0 -> Anna's end "met" (6) 0.3, flat 1 -> Bob's end
# Bob (7) 0.9, flat 2 -> Anna's end Anna (5) 0.2, flat 3 -> Bob's end "." (8) 0.05.
# Candidates: Bob-Bob 0.4*0.9 = 0.36, Anna-met 0.15, Anna-Anna 0.1, Bob-. 0.02 (scores: their logarithms).
# utils_qa's reading (flat = start rank * 2 + end rank) would pair Anna with Bob's end: "Anna met Bob" 0.45.
BEAM = {"s_prob": [0.5, 0.4], "s_idx": [5, 7], "e_prob": [0.3, 0.9, 0.2, 0.05], "e_idx": [6, 7, 5, 8]}
OFFSETS = [None] * 5 + ANNA_SPANS + [None]


def beam(cls_logits, wins=None, **options):
    wins = wins or [BEAM] * len(cls_logits)
    return beam_answer([w["s_prob"] for w in wins], [w["s_idx"] for w in wins], [w["e_prob"] for w in wins],
                       [w["e_idx"] for w in wins], cls_logits, [OFFSETS] * len(wins), ANNA, **options)


def test_beam_pairs_each_start_with_its_own_ends():
    out = beam([0.0])
    assert (out["text"], out["start"], out["end"]) == ("Bob", 9, 12)
    assert out["score"] == pytest.approx(math.log(0.36), abs=1e-6)
    assert [(c["text"], round(math.exp(c["score"]), 6)) for c in out["nbest"]] == [
        ("Bob", 0.36), ("Anna met", 0.15), ("Anna", 0.1), ("Bob.", 0.02)]


def test_beam_checks_and_null_score():
    # max_answer_len 1 drops Anna-met and Bob-. (2 tokens each); a start on a question token is no candidate.
    assert [c["text"] for c in beam([0.0], max_answer_len=1)["nbest"]] == ["Bob", "Anna"]
    on_question = {**BEAM, "s_idx": [1, 7]}
    assert [c["text"] for c in beam([0.0], [on_question])["nbest"]] == ["Bob", "Bob."]
    # v2: the null score is the minimum cls logit over windows; "" when it is above the threshold.
    assert beam([2.0, -0.5], version_2=True)["text"] == "Bob"
    out = beam([2.0, 0.7], version_2=True)
    assert out["text"] == "" and out["null_score"] == pytest.approx(0.7)
    assert beam([2.0, 0.7], version_2=True, null_threshold=1.0)["text"] == "Bob"
    assert beam([2.0, 0.7])["text"] == "Bob"  # v1 never answers ""
