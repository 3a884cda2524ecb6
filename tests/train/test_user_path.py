"""The training verbs as a user meets them: Ctrl-C saves and says how to continue, --resume reports changed
options and finished runs, file/language counts blame the right flag before anything is binarized and leave
no output folder, a model folder's own tokenizer is used and saved again beside the trained model, `info`
reads the training checkpoint. Tiny models over the synthetic word list (synthetic.py); every expected loss
is an equality between two runs of our own code."""

import logging

import pytest
import torch

import xlmlib
from xlmlib.cli import main
from xlmlib.train.metrics import read_metrics
from xlmlib.train.trainer import CHECKPOINT, Trainer

from .synthetic import pattern_lines, save_tiny, write_lines


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user-path")
    model = save_tiny(tmp / "tiny", dropout=0.1)  # dropout: an exact resume must restore the RNG state
    en = write_lines(tmp / "en.txt", pattern_lines(200, seed=1))
    fr = write_lines(tmp / "fr.txt", pattern_lines(200, seed=2))
    return model, en, fr


def _argv(corpus, out, steps, *extra, tokenizer=True):
    model, en, fr = corpus
    argv = ["pretrain", "--model", str(model), "--objective", "mlm", "--train", str(en), str(fr), "--langs", "en,fr",
            "--steps", str(steps), "--batch-size", "8", "--seq-len", "32", "--lr", "1e-3", "--out", str(out),
            "--no-progress", "--schedule", "inverse_sqrt", "--warmup-steps", "2", *extra]
    return argv + (["--tokenizer", str(model / "vocab.txt")] if tokenizer else [])


def _losses(out):
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl")]


def test_ctrl_c_saves_a_checkpoint_and_prints_the_resume_command(corpus, tmp_path, monkeypatch, capsys):
    assert main(_argv(corpus, tmp_path / "straight", 6)) == 0
    real_step = Trainer.train_step

    def interrupt_at_4(self, step):
        if step == 4:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_4)
    argv = _argv(corpus, tmp_path / "cut", 6)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"interrupted at step 4; saved {tmp_path / 'cut' / CHECKPOINT}" in err
    command = err.split("continue with: ")[1].strip()
    assert command.startswith("xlmlib pretrain ") and command.endswith(" --resume")
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["step"] == 4
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert main([*argv, "--resume"]) == 0
    # Steps 5-6 after the interrupt equal the unbroken run's: the interrupted step's RNG draw was not kept.
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "straight")


def test_resume_says_what_changed_and_when_the_run_had_finished(corpus, tmp_path, caplog):
    assert main(_argv(corpus, tmp_path, 2)) == 0
    with caplog.at_level(logging.WARNING):
        assert main([*_argv(corpus, tmp_path, 2), "--resume"]) == 0
    assert "already finished: its checkpoint is at step 2 of steps=2" in caplog.text
    caplog.clear()
    changed = [a if a != "1e-3" else "2e-3" for a in _argv(corpus, tmp_path, 3)]
    with caplog.at_level(logging.WARNING):
        assert main([*changed, "--resume"]) == 0
    assert "--resume with changed options" in caplog.text and "lr: 0.001 -> 0.002" in caplog.text
    assert "steps" not in caplog.text.split("changed options")[1]  # growing steps extends a run; not reported


@pytest.mark.parametrize("flags, message", [
    (["--langs", "en"], "2 --train file(s) but 1 --langs (en); give one language per --train file"),
    (["--valid", "VALID"], "1 --valid file(s) but 2 --langs (en,fr); give one held-out file per language"),
])
def test_count_mismatch_blames_the_flag_before_binarizing(corpus, tmp_path, capsys, flags, message):
    argv = _argv(corpus, tmp_path / "run", 2)
    if flags[0] == "--langs":
        argv[argv.index("--langs") + 1] = "en"
    else:
        argv += ["--valid", str(corpus[1])]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing binarized, no empty folder left


def test_failed_run_removes_the_folder_it_created(corpus, tmp_path, capsys):
    argv = _argv(corpus, tmp_path / "run", 2)
    argv[argv.index("--train") + 1] = str(tmp_path / "missing.txt")
    assert main(argv) == 1
    assert "missing.txt is neither a text file nor a binarized prefix" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_model_folder_tokenizer_is_used_and_saved_beside_the_result(corpus, tmp_path, capsys):
    """No --tokenizer: the word list beside --model binarizes the text, and OUT/model gets it too."""
    assert main(_argv(corpus, tmp_path, 2, tokenizer=False)) == 0
    assert (tmp_path / "model" / "vocab.txt").read_text() == (corpus[0] / "vocab.txt").read_text()
    assert main(["info", str(tmp_path / CHECKPOINT)]) == 0
    out = capsys.readouterr().out
    assert "xlmlib training checkpoint (step 2)" in out and "step 2 of 2 (finished), pretrain mlm" in out
    assert "--resume" in out
    model = xlmlib.MaskedLM.from_pretrained(tmp_path / CHECKPOINT)  # the training checkpoint loads as weights
    reference = xlmlib.MaskedLM.from_pretrained(tmp_path / "model")
    ids = torch.tensor([[0, 7, 8, 9, 1]])
    torch.testing.assert_close(model(ids, langs=0).logits, reference(ids, langs=0).logits)


def test_local_looking_paths_are_not_searched_in_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("./no-such-model", "runs/x/model", str(tmp_path / "gone"), "weights.safetensors", "~/nothing"):
        with pytest.raises(FileNotFoundError, match="no such file or directory"):
            xlmlib.MaskedLM.from_pretrained(name)
    with pytest.raises(FileNotFoundError, match="looked in"):  # a hub-like name still reports the cache search
        xlmlib.MaskedLM.from_pretrained("org/model")


def test_langs_codes_are_accepted_where_the_model_knows_its_languages():
    from .synthetic import tiny_model

    model = tiny_model()  # languages ("en", "fr")
    ids = torch.tensor([[0, 7, 8, 1], [0, 9, 10, 1]])
    torch.testing.assert_close(model(ids, langs="fr").logits, model(ids, langs=1).logits)
    torch.testing.assert_close(model(ids, langs=["en", "fr"]).logits, model(ids, langs=[0, 1]).logits)
    with pytest.raises(ValueError, match="unknown language 'de'; this model knows: en, fr"):
        model(ids, langs="de")
    unnamed = xlmlib.MaskedLM(model.config.replace(langs=()))
    with pytest.raises(ValueError, match="does not name its languages; pass language ids 0..1"):
        unnamed(ids, langs="en")


def test_every_cli_option_has_help_with_its_default():
    import argparse

    from xlmlib.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for verb, p in [("", parser), *sub.choices.items()]:
        for action in p._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            text = action.help or ""
            if "default" not in text and "required" not in text:
                missing.append(f"{verb} {action.option_strings[-1]}: {text!r}")
    assert not missing, "\n".join(missing)
