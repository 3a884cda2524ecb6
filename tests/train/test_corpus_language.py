"""Every corpus is tokenized with its own language's rules: binarization (`xlmlib preprocess`, pretraining
inputs) and fine-tuning pass the corpus language to the tokenizer. XLM's Moses rules differ per language:
English splits "l'homme" as `l 'homme`, French as `l' homme` (sacremoses' per-language apostrophe rules),
so an XLM en-fr tokenizer gives different ids for the same French line under "en" and "fr"."""

from __future__ import annotations

import pytest

from xlmlib import ModelConfig, XLMTokenizer
from xlmlib.cli import main
from xlmlib.train.config import TrainConfig
from xlmlib.train.data import MemmapCorpus
from xlmlib.train.distributed import Dist
from xlmlib.train.finetune import Encoded
from xlmlib.train.pretrain import build_source
from xlmlib.train.readers import Example
from xlmlib.train.text import TokenizerAdapter

# Written for this test; every line has an elided article or pronoun before a vowel.
ELISIONS = ["L'homme qu'il a vu n'est pas là.", "C'est l'école de l'enfant.", "J'aime l'été et l'automne."]


@pytest.fixture(scope="module")
def enfr(assets, tmp_path_factory):
    """The released en-fr BPE (shared/assets/xlm-bpe-fastbpe), saved as a tokenizer folder; and French text:
    the lines above plus the first 40 Tatoeba French lines that hold an apostrophe."""
    tok = XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="enfr")
    work = tmp_path_factory.mktemp("enfr")
    tok.save_pretrained(work / "tok")
    tatoeba = (assets / "tatoeba-laser-v1" / "tatoeba.fra-eng.fra").read_text(encoding="utf-8").splitlines()
    lines = ELISIONS + [line for line in tatoeba if "'" in line][:40]
    (work / "fr.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tok, work, lines


def _unframed(tok, line, lang):
    return tok.encode(line, lang=lang, add_special_tokens=False)


def test_the_rules_differ_between_english_and_french(enfr):
    tok, _, lines = enfr
    assert tok.tokenize("l'homme", lang="fr")[:1] != tok.tokenize("l'homme", lang="en")[:1]
    differ = [line for line in lines if _unframed(tok, line, "fr") != _unframed(tok, line, "en")]
    assert set(ELISIONS) <= set(differ)


def test_preprocess_binarizes_with_the_corpus_language(enfr):
    tok, work, lines = enfr
    assert main(["preprocess", "--tokenizer", str(work / "tok"), "--langs", "fr", "--out", str(work / "pre"),
                 str(work / "fr.txt")]) == 0
    corpus = MemmapCorpus(work / "pre" / "fr")
    assert [corpus[i].tolist() for i in range(len(lines))] == [_unframed(tok, line, "fr") for line in lines]
    assert corpus[0].tolist() != _unframed(tok, lines[0], "en")


def test_preprocess_refuses_a_language_count_that_does_not_match(enfr, capsys):
    _, work, _ = enfr
    assert main(["preprocess", "--tokenizer", str(work / "tok"), "--langs", "en,fr", "--out", str(work / "bad"),
                 str(work / "fr.txt")]) == 1
    assert "1 input files but 2 --langs" in capsys.readouterr().err


def test_pretraining_binarizes_each_file_with_its_language(enfr):
    tok, work, lines = enfr
    cfg = TrainConfig(model="xlm-mlm-enfr-1024", train=(str(work / "fr.txt"),), langs=("fr",),
                      tokenizer=str(work / "tok"), out=str(work / "run"), batch_size=2, seq_len=16)
    build_source(cfg, ModelConfig.from_preset("xlm-mlm-enfr-1024"), work / "run", Dist(), seed=0)
    corpus = MemmapCorpus(work / "run" / "data" / "fr.txt")
    assert [corpus[i].tolist() for i in range(len(lines))] == [_unframed(tok, line, "fr") for line in lines]


def test_finetuning_encodes_each_example_in_its_language(enfr):
    tok, _, _ = enfr
    cfg = ModelConfig.from_preset("xlm-mlm-enfr-1024")
    examples = [Example(ELISIONS[0], ELISIONS[1], "yes", "fr"), Example(ELISIONS[0], "", "no", "en")]
    data = Encoded(examples, TokenizerAdapter(tok), cfg, ["no", "yes"], task="sequence", max_len=64, langs={})
    eos = cfg.eos_index
    # XLM frames a pair `</s> A </s> B </s>` (formats.md section 5, XNLI).
    assert data.rows[0] == [eos, *_unframed(tok, ELISIONS[0], "fr"), eos, *_unframed(tok, ELISIONS[1], "fr"), eos]
    assert data.rows[1] == [eos, *_unframed(tok, ELISIONS[0], "en"), eos]
    assert data.rows[0][1:-1] != data.rows[1][1:-1]


def test_translation_training_encodes_each_side_in_its_language(enfr):
    from xlmlib.mt.train import load_data
    from xlmlib.train.config import MTConfig

    tok, work, lines = enfr
    (work / "en.txt").write_text("\n".join(["I can't go.", "It's John's."] * 2) + "\n", encoding="utf-8")
    cfg = MTConfig(langs=("en", "fr"), mono=(str(work / "en.txt"), str(work / "fr.txt")),
                   parallel=(str(work / "en.txt"), str(work / "en.txt")), max_len=1000)
    mono, para = load_data(cfg, TokenizerAdapter(tok))
    assert mono["fr"] == [_unframed(tok, line, "fr") for line in lines]
    assert mono["en"][0] == _unframed(tok, "I can't go.", "en")
    # The same English line read as the "fr" side of the pair gets French rules (`can 't` vs `can' t`).
    assert _unframed(tok, "I can't go.", "en") != _unframed(tok, "I can't go.", "fr")
    assert para[("en", "fr")][0] == (_unframed(tok, "I can't go.", "en"), _unframed(tok, "I can't go.", "fr"))
