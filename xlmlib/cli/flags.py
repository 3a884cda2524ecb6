"""Flags of the training verbs (pretrain, finetune, train-mt), derived from their config dataclasses
(train/config.py): one flag per field with its help and default, a --config recipe beneath the command line,
and --device / --resume beside them."""

from __future__ import annotations

import argparse
import dataclasses


def comma_list(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _field_meta(cls, name: str) -> dict:
    """A field's metadata (help, choices, ...), from the first class of the MRO that gives it (a subclass
    that only changes a default keeps its parent's help)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata:
            return dict(f.metadata)
    return {}


def _shown(value) -> str:
    if value in ((), ""):
        return "none"
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_config_args(p: argparse.ArgumentParser, cls) -> None:
    """One flag per field of the config dataclass `cls`, with the field's help and default: a new field is a
    flag the moment it exists. Every flag defaults to None ("not given") so a --config recipe value stands."""
    p.add_argument("--config", help="a configs/tasks/*.toml recipe; command-line options override it "
                   "(default: none)")
    for f in dataclasses.fields(cls):
        meta = _field_meta(cls, f.name)
        flag = "--" + f.name.replace("_", "-")
        text = meta.get("help") or f.name
        # A help that says its own default (what an empty value means) keeps it; the others show the field's.
        text = (text if "(default: " in text else f"{text} (default: {_shown(f.default)})").replace("%", "%%")
        choices = meta.get("choices")
        choices = choices() if callable(choices) else choices
        if isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(f.default, tuple):
            metavar = meta.get("metavar")
            p.add_argument(flag, nargs=len(metavar) if metavar else "+", metavar=metavar, default=None, help=text,
                           type=float if "float" in str(f.type) else str)
        else:
            p.add_argument(flag, type=type(f.default), choices=choices, default=None, help=text)


def config_of(args, cls):
    """The config of a run: the --config recipe (if any) with the flags given on top."""
    from ..train.config import config_from_dict, load_recipe

    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if v is not None and k in names}
    for key, value in given.items():
        if _field_meta(cls, key).get("comma"):
            given[key] = [part for v in value for part in comma_list(v)]
    if args.config:
        cfg = load_recipe(args.config, given)
        if not isinstance(cfg, cls):
            raise ValueError(f"{args.config} is not a recipe for this command")
        return cfg
    return config_from_dict(cls, given)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--device and --resume, which every training verb takes beside its config's flags."""
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: this process's GPU, else cpu)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt with the same options (default: start afresh)")
