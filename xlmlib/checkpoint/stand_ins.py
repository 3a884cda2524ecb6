"""Inert stand-ins for the OmegaConf classes that fairseq's pickled `cfg` names, so that a DictConfig
can be read without importing omegaconf (or running any of its code).

What a pickled DictConfig holds (checked by pickling omegaconf 2.4 containers with protocol 2, the
one torch.save uses): NEWOBJ of omegaconf.dictconfig.DictConfig / omegaconf.listconfig.ListConfig /
omegaconf.nodes.*Node / omegaconf.base.(Container)Metadata, then BUILD with the instance __dict__:
containers keep their children in `_content`, value nodes their value in `_val`. Metadata refers to
typing.Any, the builtins dict/list/int, and a collections.defaultdict(dict) resolver cache.
Each stand-in only stores that state; `plain()` turns a tree of them into dicts, lists and values.
"""

from __future__ import annotations

import argparse
import builtins


class _Inert:
    """Accepts the pickled state and keeps it; runs nothing else."""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state), as pickle.load_build
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state if isinstance(state, dict) else {})


class DictConfig(_Inert):
    pass


class ListConfig(_Inert):
    pass


class ValueNode(_Inert):
    pass


class Metadata(_Inert):
    pass


class AnyType:
    """Stands for typing.Any, which Metadata names as its ref/key/element type."""


def resolver_cache(*_args) -> dict:
    """Stands for collections.defaultdict(dict), the metadata's (always rebuilt) resolver cache."""
    return {}


_NODES = ("AnyNode", "IntegerNode", "FloatNode", "StringNode", "BooleanNode", "EnumNode", "BytesNode", "PathNode")

OMEGACONF_GLOBALS: tuple = (
    (DictConfig, "omegaconf.dictconfig.DictConfig"),
    (ListConfig, "omegaconf.listconfig.ListConfig"),
    (Metadata, "omegaconf.base.Metadata"),
    (Metadata, "omegaconf.base.ContainerMetadata"),
    *((ValueNode, f"omegaconf.nodes.{n}") for n in _NODES),
    (AnyType, "typing.Any"),
    (resolver_cache, "collections.defaultdict"),
    # Types Metadata refers to; torch maps protocol 2's `__builtin__.dict` etc. to these. Types only:
    # building one from pickled arguments makes an empty or literal container, nothing else.
    builtins.dict, builtins.list, builtins.int, builtins.float, builtins.str, builtins.bool,
)


def plain(value):
    """A stand-in tree (or Namespace, dict, list) as plain Python dicts, lists and values."""
    if isinstance(value, (DictConfig, ListConfig)):
        return plain(value.__dict__.get("_content"))
    if isinstance(value, ValueNode):
        return plain(value.__dict__.get("_val"))
    if isinstance(value, argparse.Namespace):
        return {k: plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
