"""XLMRTokenizer against its references: sentencepiece + the fairseq id shift (every Tatoeba line and
hand-made edge cases), and transformers' XLMRobertaTokenizer for pairs and <mask>."""

from __future__ import annotations

import pytest
import torch

from xlmlib.tokenize import Tokenizer, XLMRTokenizer

# Lines where transformers' Rust XLMRobertaTokenizer (tokenizers 0.23.3, asset tokenizer.json) and
# sentencepiece 0.2.3 on the rebuilt model disagree: found by comparing both on all 177,754 Tatoeba
# lines (PROVENANCE.md section 6 reports the same 17). Causes seen: invisible format characters
# (U+200B/U+200D/U+200E/U+200F), combining-mark sequences (Malayalam, Tamil, Telugu, Yiddish) and one
# tie between equal-score segmentations of "....". We follow sentencepiece, which fairseq trained with.
KNOWN_HF_DISAGREEMENTS = {
    ("tatoeba.arz-eng.arz", 259), ("tatoeba.khm-eng.khm", 434), ("tatoeba.khm-eng.khm", 511),
    ("tatoeba.mal-eng.mal", 433), ("tatoeba.mal-eng.mal", 571), ("tatoeba.ron-eng.ron", 512),
    ("tatoeba.ron-eng.ron", 592), ("tatoeba.ron-eng.ron", 605), ("tatoeba.ron-eng.ron", 824),
    ("tatoeba.tam-eng.tam", 140), ("tatoeba.tam-eng.tam", 194), ("tatoeba.tam-eng.tam", 242),
    ("tatoeba.tel-eng.tel", 34), ("tatoeba.uig-eng.uig", 236), ("tatoeba.uig-eng.uig", 818),
    ("tatoeba.ukr-eng.ukr", 647), ("tatoeba.yid-eng.yid", 276),
}

EDGE_CASES = [
    "", " ", "   multiple   spaces  ", "\t tab\tand\nnewline\r\n", "e\u0301 combining acute", "a\u0308\u0304",
    "zero\u200bwidth\u200cjoin\u200d\u2060", "\u200e\u200fmarks", "\ufeffbom", "😀 emoji 👩\u200d👩\u200d👧 🇫🇷",
    "ΑΘΗΝΑ ΚΑΙ ΣΙΣΥΦΟΣ", "ＦＵＬＬ　ｗｉｄｔｈ　１２３？！", "ｶﾀｶﾅ half-width", "https://example.com/a?b=c&d=e#f",
    "user@example.org", "\u00a0nbsp\u00a0", "①②③ ﬁ ﬂ ㎏", "中文，日本語。한국어", "<unk> <s> </s> <pad>", "x" * 3000,
]


def fairseq_ids(sp, text: str) -> list[int]:
    """The reference: sentencepiece ids shifted into the fairseq dictionary (formats.md 3 and 4)."""
    return [0] + [i + 1 if i else 3 for i in sp.encode(text)] + [2]


def test_ids_match_sentencepiece_on_every_tatoeba_line(xlmr, sp, all_tatoeba):
    lines = [line for _, _, line in all_tatoeba]
    ours = xlmr(lines, padding=False, truncation=False, return_tensors=None)["input_ids"]
    reference = [[0] + [i + 1 if i else 3 for i in row] + [2] for row in sp.encode(lines)]
    mismatches = [k for k, (a, b) in enumerate(zip(ours, reference)) if a != b]
    assert len(lines) == 177754  # PROVENANCE.md section 3
    assert mismatches == []


def test_padded_tensor_batch_matches_unpadded(xlmr, sp, tatoeba):
    lines = tatoeba("fra")[:300]
    batch = xlmr(lines)
    for row, mask, line in zip(batch["input_ids"], batch["attention_mask"], lines):
        assert row[mask.bool()].tolist() == fairseq_ids(sp, line)
        assert set(row[~mask.bool()].tolist()) <= {1}


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_match_sentencepiece(xlmr, sp, text):
    assert xlmr.encode(text) == fairseq_ids(sp, text)
    # The per-text path (used with offsets) must agree with the batched one.
    assert xlmr(text, return_offsets=True, return_tensors=None, truncation=False)["input_ids"] == fairseq_ids(sp, text)


@pytest.mark.slow
def test_transformers_disagreements_are_the_recorded_ones(hf_xlmr, sp, all_tatoeba):
    lines = [line for _, _, line in all_tatoeba]
    theirs = hf_xlmr(lines)["input_ids"]
    found = {(name, i) for (name, i, line), ids in zip(all_tatoeba, theirs) if ids != fairseq_ids(sp, line)}
    assert found <= KNOWN_HF_DISAGREEMENTS


def test_pairs_match_transformers(xlmr, hf_xlmr, tatoeba):
    firsts, seconds = [], []
    for code in ("fra", "rus", "jpn", "ara", "hin", "deu"):
        firsts += tatoeba(code)[::7]
        seconds += tatoeba(f"eng:{code}")[::7]
    ours = xlmr(firsts, seconds, padding=False, truncation=False, return_tensors=None)["input_ids"]
    theirs = hf_xlmr(firsts, seconds)["input_ids"]
    assert len(firsts) > 800
    assert [k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b] == []
    assert ours[0][:1] == [0] and [2, 2] == ours[0][ours[0].index(2):ours[0].index(2) + 2]


MASK_CASES = ["<mask>", "a <mask> b", "a<mask>b", "Hello <mask>.", "  <mask>  ", "x\t<mask>\n y", "<mask><mask>",
              "The capital of France is <mask>.", "<mask> starts", "ends <mask>", "中文<mask>文", "a  <mask>  <mask> b"]


def test_mask_matches_transformers(xlmr, hf_xlmr, tatoeba):
    texts = list(MASK_CASES)
    for line in tatoeba("eng:fra")[:300]:
        words = line.split()
        k = len(words) // 2
        texts.append(" ".join(words[:k] + ["<mask>"] + words[k + 1:]))
    ours = xlmr(texts, padding=False, truncation=False, return_tensors=None)["input_ids"]
    theirs = hf_xlmr(texts)["input_ids"]
    # Recorded disagreement: with trailing whitespace the tokenizers library emits a last lone "▁"
    # (id 6) where sentencepiece emits nothing (PROVENANCE.md section 2 saw the same on plain text).
    expected = [b if t == t.rstrip() else b[:-2] + [2] for t, b in zip(texts, theirs)]
    assert [t for t, a, b in zip(texts, theirs, expected) if t != t.rstrip() and a[-2] != 6] == []
    assert [t for t, a, b in zip(texts, ours, expected) if a != b] == []
    assert xlmr.encode("a <mask> b") == [0, 10, 250001, 876, 2]  # ids read off transformers for the same text


def test_special_layout_and_empty_text(xlmr):
    assert (xlmr.vocab_size, xlmr.mask_id) == (250002, 250001)  # formats.md section 3
    assert xlmr.encode("") == [0, 2]
    assert xlmr.encode("Hello World!") == [0, 35378, 6661, 38, 2]  # PROVENANCE.md: known xlm-roberta-base ids
    # Each text piece after a <mask> starts a new word, as in transformers (Metaspace prepend "always").
    assert xlmr.tokenize("Hello <mask>!") == ["▁Hello", "<mask>", "▁!"]


def test_model_inputs_only(xlmr):
    batch = xlmr(["a b", "c"], ["d", "e f"])
    assert set(batch) == {"input_ids", "attention_mask"}  # no token_type_ids, no langs for XLM-R


def test_truncation_and_padding(xlmr):
    long = "word " * 1000
    assert xlmr(long)["input_ids"].shape == (1, 512)  # max_length defaults to the 512-token limit
    assert xlmr(long, truncation=False)["input_ids"].shape[1] > 512
    first, second = xlmr.encode("a b c d e f g")[1:-1], xlmr.encode("h i")[1:-1]
    # longest_first: 7 + 2 content tokens, 4 specials, max 10 -> remove 3, all from the longer first text
    ids = xlmr("a b c d e f g", "h i", max_length=10, return_tensors=None)["input_ids"]
    assert ids == [0] + first[:4] + [2, 2] + second + [2]
    with pytest.raises(ValueError, match="only_second"):
        xlmr("a b c d e f g", "h i", max_length=6, truncation="only_second")
    ids = xlmr("a b c", "d e f g h", max_length=9, truncation="only_first", return_tensors=None)["input_ids"]
    assert ids == [0, 2, 2] + xlmr.encode("d e f g h")[1:-1] + [2]
    padded = xlmr(["a", "a b c"], padding="max_length", max_length=8)
    assert padded["input_ids"].shape == (2, 8) and padded["attention_mask"].sum().item() == 3 + 5
    with pytest.raises(ValueError, match="padding"):
        xlmr(["a", "a b c"], padding=False)


def test_decode(xlmr):
    ids = xlmr.encode("Hello World, how are you?")
    assert xlmr.decode(ids, skip_special_tokens=True) == "Hello World, how are you?"
    assert xlmr.decode(torch.tensor(ids)) == "<s> Hello World, how are you?</s>"


def test_errors(xlmr, tmp_path):
    with pytest.raises(TypeError, match="int"):
        xlmr(3)
    with pytest.raises(TypeError, match="bytes"):
        xlmr(["ok", b"bytes"])
    with pytest.raises(FileNotFoundError, match="sentencepiece.bpe.model"):
        XLMRTokenizer.from_pretrained(tmp_path)
    bad = tmp_path / "sentencepiece.bpe.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="sentencepiece.bpe.model"):
        Tokenizer.from_pretrained(tmp_path)


def test_save_pretrained_round_trip(xlmr, tmp_path, tatoeba):
    xlmr.save_pretrained(tmp_path / "saved")
    # special_tokens_map.json: transformers' AutoTokenizer reads the folder too (XLMRobertaTokenizer)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "sentencepiece.bpe.model", "special_tokens_map.json", "tokenizer_config.json"]
    again = Tokenizer.from_pretrained(tmp_path / "saved")
    assert isinstance(again, XLMRTokenizer)
    lines = tatoeba("deu")[:200]
    assert torch.equal(again(lines)["input_ids"], xlmr(lines)["input_ids"])
