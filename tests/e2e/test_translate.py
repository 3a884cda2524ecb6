"""translate() and the `translate` / `train-mt` verbs: an MT .pth with the released en-de BPE files beside
it (the layout users hold), order-preserving batching, files, recipes and the BLEU record."""

from __future__ import annotations

import shutil

import pytest

import xlmlib
from xlmlib.mt.translate import cut, frame, load_translator

from ..folders import cli
from ..train.synthetic import save_tiny, write_lines
from ..unit import mt_reference as ref

LINES = ["Guten Morgen!", "Wie geht es dir heute?", "Ja.", "Das Haus ist sehr alt und groß.", "Danke schön.",
         "Ich weiß es nicht.", "Tom schläft."]


@pytest.fixture(scope="module")
def mt_dir(assets, tmp_path_factory):
    """A random MT .pth in the original layout over the released en-de vocabulary (64,699 ids), BPE beside."""
    folder = tmp_path_factory.mktemp("mt")
    V, D = 64699, 16
    enc = ref.part_state(V, D, 1, 2, decoder=False, seed=0)
    dec = ref.part_state(V, D, 1, 2, decoder=True, seed=1)
    prm = ref.params(V, D, 1, 2, 2, gelu=True)
    prm["lang2id"], prm["id2lang"] = {"de": 0, "en": 1}, {0: "de", 1: "en"}
    ref.write_mt_pth(folder / "best-valid_de-en_mt_bleu.pth", enc, dec, prm, ddp=True)
    for name in ("codes_ende", "vocab_ende"):
        shutil.copy(assets / "xlm-bpe-fastbpe" / name, folder / name)
    return folder


def test_translate_frames_and_keeps_input_order(mt_dir):
    model, tok = load_translator(mt_dir / "best-valid_de-en_mt_bleu.pth")
    rows = frame(tok, ["Guten Morgen!"], model, "de")
    assert rows[0][0] == rows[0][-1] == 1 and 0 not in rows[0]  # </s> ... </s>, no <s>
    assert cut([1, 7, 8, 1, 2], 1) == [7, 8]
    # A fixed length limit makes each line's translation independent of its batch, so batching by
    # length (windows, sorting) must give exactly the line-by-line results, in input order.
    together = xlmlib.translate(model, tok, LINES, src_lang="de", tgt_lang="en", batch_size=2, max_new_tokens=4)
    alone = [xlmlib.translate(model, tok, line, src_lang="de", tgt_lang="en", max_new_tokens=4)[0] for line in LINES]
    assert together == alone and len(set(together)) > 1
    beams = xlmlib.translate(model, tok, LINES[:2], src_lang="de", tgt_lang="en", num_beams=3, max_new_tokens=4)
    assert len(beams) == 2 and all(isinstance(b, str) for b in beams)
    with pytest.raises(ValueError, match="tgt_lang 'fr'.*de, en"):
        xlmlib.translate(model, tok, LINES, src_lang="de", tgt_lang="fr")


def test_cli_translate_stdin_and_files(mt_dir, tmp_path):
    pth = mt_dir / "best-valid_de-en_mt_bleu.pth"
    model, tok = load_translator(pth)
    expected = xlmlib.translate(model, tok, LINES, src_lang="de", tgt_lang="en", max_new_tokens=4)
    piped = cli("translate", "--model", pth, "--src", "de", "--tgt", "en", "--max-new-tokens", "4",
                 "--batch-size", "3", stdin="\n".join(LINES) + "\n")
    assert piped.code == 0, piped.err
    assert piped.out.splitlines() == expected
    write_lines(tmp_path / "in.de", LINES)
    done = cli("translate", "--model", pth, "--src", "de", "--tgt", "en", "--max-new-tokens", "4", "--input",
                tmp_path / "in.de", "--output", tmp_path / "out.en")
    assert done.code == 0, done.err
    assert (tmp_path / "out.en").read_text().splitlines() == expected
    assert "translate" in done.err  # the progress bar on files
    bad = cli("translate", "--model", pth, "--src", "xx", "--tgt", "en", stdin="Hallo\n")
    assert bad.code == 1 and "src_lang 'xx'" in bad.err and "Traceback" not in bad.err


def test_cli_train_mt_recipe_logs_bleu(tmp_path):
    save_tiny(tmp_path / "init", xlmlib.Translator)
    for lg, words in (("en", "a1 a2 a3"), ("fr", "b1 b2 b3")):
        write_lines(tmp_path / f"train.{lg}", [words] * 8)
    recipe = tmp_path / "mt.toml"
    recipe.write_text('[train_mt]\nlangs = ["en", "fr"]\nmt_steps = ["en-fr"]\nae_steps = ["en"]\n'
                      'bt_steps = ["fr-en-fr"]\nlambda_ae = "0:1,4:0"\nsteps = 6\nbatch_size = 4\n'
                      'eval_every = 3\nprecision = "fp32"\n')
    files = [tmp_path / "train.en", tmp_path / "train.fr"]
    run = cli("train-mt", "--config", recipe, "--model", tmp_path / "init", "--parallel", *files, "--mono", *files,
               "--valid", *files, "--out", tmp_path / "run", "--no-progress")
    assert run.code == 0, run.err
    assert "bleu_en-fr" in run.out
    records = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "bleu_" in line]
    assert len(records) == 2 and '"bleu_fr-en"' in records[0]  # bt's direction is scored too
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
