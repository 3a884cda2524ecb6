"""Classes pickled under OmegaConf's names, so tests can write a DictConfig-style `cfg` without omegaconf.

They reproduce what omegaconf 2.4 writes (checked by pickling a real DictConfig, see
data/make_omegaconf_cfg.py): instances built by NEWOBJ, then BUILD with the __dict__ {_metadata,
_parent, _content} for containers and {_metadata, _parent, _flags_cache, _val} for value nodes.
test_fairseq also loads data/omegaconf_cfg.pt, the real thing, to check the loader's stand-ins.
"""

from __future__ import annotations

import sys
import types
import typing
from collections import defaultdict
from contextlib import contextmanager


def _cls(module: str, name: str):
    return type(name, (), {"__module__": module, "__qualname__": name})


@contextmanager
def fake_omegaconf():
    """Registers the fake modules while pickling; yields `to_dictconfig`."""
    names = {"omegaconf": None, "omegaconf.dictconfig": ["DictConfig"], "omegaconf.listconfig": ["ListConfig"],
             "omegaconf.nodes": ["AnyNode"], "omegaconf.base": ["Metadata", "ContainerMetadata"]}
    saved = {m: sys.modules.get(m) for m in names}
    classes = {}
    for module, cls_names in names.items():
        mod = types.ModuleType(module)
        for n in cls_names or ():
            classes[n] = _cls(module, n)
            setattr(mod, n, classes[n])
        sys.modules[module] = mod

    def meta(container: bool, key, object_type=None):
        m = object.__new__(classes["ContainerMetadata" if container else "Metadata"])
        m.__dict__.update(ref_type=typing.Any, object_type=object_type, optional=True, key=key, flags={},
                          flags_root=False, resolver_cache=defaultdict(dict))
        return m

    def to_dictconfig(value, key=None):
        if isinstance(value, (dict, list)):
            node = object.__new__(classes["DictConfig" if isinstance(value, dict) else "ListConfig"])
            content = ({k: to_dictconfig(v, k) for k, v in value.items()} if isinstance(value, dict)
                       else [to_dictconfig(v, j) for j, v in enumerate(value)])
            node.__dict__.update(_metadata=meta(True, key, type(value)), _parent=None, _content=content)
            return node
        node = object.__new__(classes["AnyNode"])
        node.__dict__.update(_metadata=meta(False, key), _parent=None, _flags_cache=None, _val=value)
        return node

    try:
        yield to_dictconfig
    finally:
        for module, old in saved.items():
            if old is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = old
