"""The pretrain / finetune flags are derived from the config dataclass fields: every field is a flag with its
help and default, a recipe (--config) gives the values the command line does not, and the command line wins."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from xlmlib.cli import build_parser
from xlmlib.cli.flags import config_of as _config
from xlmlib.train.config import FinetuneConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def _subparser(verb):
    parser = build_parser()
    return next(a for a in parser._subparsers._group_actions if a.dest == "verb").choices[verb]


@pytest.mark.parametrize(("verb", "cls"), [("pretrain", TrainConfig), ("finetune", FinetuneConfig)])
def test_every_config_field_is_a_flag_with_help_and_default(verb, cls):
    actions = {a.dest: a for a in _subparser(verb)._actions}
    for f in dataclasses.fields(cls):
        action = actions[f.name]
        assert f"--{f.name.replace('_', '-')}" in action.option_strings
        assert "(default: " in action.help and not action.help.startswith(f"{f.name} (default"), f.name


def test_the_fields_that_had_no_flag_reach_the_config():
    args = build_parser().parse_args([
        "pretrain", "--betas", "0.9", "0.999", "--eps", "1e-8", "--weight-decay", "0.1", "--sample-alpha", "0.5",
        "--lang-alpha", "0.3", "--no-reset-positions", "--eval-steps", "4"])
    cfg = _config(args, TrainConfig)
    assert (cfg.betas, cfg.eps, cfg.weight_decay, cfg.sample_alpha, cfg.lang_alpha, cfg.reset_positions,
            cfg.eval_steps) == ((0.9, 0.999), 1e-8, 0.1, 0.5, 0.3, False, 4)


def test_recipe_values_stand_unless_the_command_line_overrides_them():
    recipe = ROOT / "configs" / "tasks" / "mlm.toml"
    args = build_parser().parse_args(["pretrain", "--config", str(recipe), "--lr", "3e-4", "--langs", "en,fr",
                                      "--no-progress"])
    cfg = _config(args, TrainConfig)
    assert cfg.lr == 3e-4 and cfg.langs == ("en", "fr") and cfg.progress is False  # from the command line
    assert cfg.seq_len == 256 and cfg.schedule == "inverse_sqrt"  # from mlm.toml
    assert cfg.weight_decay == TrainConfig().weight_decay  # in neither: the dataclass default
    finetune = build_parser().parse_args(["finetune", "--task", "token", "--labels", "O,B-PER", "I-PER"])
    assert _config(finetune, FinetuneConfig).labels == ("O", "B-PER", "I-PER")
