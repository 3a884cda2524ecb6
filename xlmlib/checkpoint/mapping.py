"""The one engine that renames parameters between our layout and a foreign format.

A Table lists (internal, external) name pairs. A pair names either a module (then every `.weight` /
`.bias` / other leaf under it maps alongside) or a full parameter key. `{i}` stands for a layer index.
Base pairs get the format's base prefix (e.g. "roberta.") when the checkpoint has one; head pairs
are per architecture because the same external name can mean different heads (XLM's
`sequence_summary.summary` is the classifier of one class and the choice scorer of another).
`ignore` holds regexes of external keys dropped on purpose (buffers, version counters); `tied`
holds (duplicate, original) external keys that must be equal, of which only the original is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be mapped onto the model: the message names the keys and the file."""


@dataclass(frozen=True)
class Table:
    name: str
    base: tuple[tuple[str, str], ...]
    base_prefix: str = ""
    heads: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    tied: tuple[tuple[str, str], ...] = ()

    def pairs(self, n_layers: int, architecture: str | None, prefixed: bool) -> list[tuple[str, str]]:
        prefix = self.base_prefix if prefixed else ""
        out = []
        for internal, external in self.base:
            for i in range(n_layers) if "{i}" in internal else [None]:
                out.append((internal.format(i=i), prefix + external.format(i=i)))
        out.extend(self.heads.get(architecture, ()))
        return out

    def tied_pairs(self, prefixed: bool) -> list[tuple[str, str]]:
        prefix = self.base_prefix if prefixed else ""
        return [(dup.replace("{base}", prefix), orig.replace("{base}", prefix)) for dup, orig in self.tied]


def _lookup(key: str, mapping: dict[str, str]) -> str | None:
    """Map a full key, or its longest mapped module prefix."""
    if key in mapping:
        return mapping[key]
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in mapping:
            return mapping[module] + "." + ".".join(parts[cut:])
    return None


def to_internal(table: Table, state: dict[str, torch.Tensor], n_layers: int, architecture: str | None,
                source: str) -> dict[str, torch.Tensor]:
    """Rename a foreign state dict to our layout. Every key is mapped, ignored on purpose, or a checked tie."""
    prefixed = bool(table.base_prefix) and any(k.startswith(table.base_prefix) for k in state)
    ext_to_int = {ext: internal for internal, ext in table.pairs(n_layers, architecture, prefixed)}
    state = dict(state)
    for dup, orig in table.tied_pairs(prefixed):
        if dup not in state:
            continue
        if orig in state:
            if state[dup].shape != state[orig].shape or not torch.equal(state[dup], state[orig]):
                raise CheckpointError(f"{source}: {dup} should be tied to (equal to) {orig}, but they differ")
            del state[dup]
        else:
            state[orig] = state.pop(dup)
    out, unmapped = {}, []
    for key, tensor in state.items():
        internal = _lookup(key, ext_to_int)
        if internal is not None:
            out[internal] = tensor
        elif not any(re.search(pattern, key) for pattern in table.ignore):
            unmapped.append(key)
    if unmapped:
        raise CheckpointError(
            f"{source}: {len(unmapped)} key(s) do not belong to the {table.name} layout"
            f" ({architecture or 'architecture unknown'}): {', '.join(sorted(unmapped)[:20])}")
    return out


def to_external(table: Table, state: dict[str, torch.Tensor], n_layers: int, architecture: str,
                prefixed: bool) -> dict[str, torch.Tensor]:
    """Rename our state dict to a foreign layout (tied duplicates are left for the reader to re-tie)."""
    int_to_ext = {internal: ext for internal, ext in table.pairs(n_layers, architecture, prefixed)}
    out, unmapped = {}, []
    for key, tensor in state.items():
        external = _lookup(key, int_to_ext)
        if external is None:
            unmapped.append(key)
        else:
            out[external] = tensor
    if unmapped:
        raise CheckpointError(f"{architecture} has no place for: {', '.join(sorted(unmapped))}")
    return out
