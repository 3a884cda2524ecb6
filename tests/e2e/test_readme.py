"""The README's examples run as written: every ```python block in order in one namespace, and every
`xlmlib ...` line of the bash blocks through the command's own main(). Published names ("xlm-roberta-base") resolve to a
tiny random model with the real XLM-R vocabulary, placed in a Hugging Face cache layout built here; the
README's "xlm-files" folder and "corpus.txt" are copies of the shared XLM BPE files and Tatoeba lines."""

import re
import shlex
from pathlib import Path

import pytest

import xlmlib

from ..folders import cli, run_fresh, tiny_model

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture()
def hub_cache(tmp_path, assets, monkeypatch):
    snapshot = tmp_path / "hub" / "models--FacebookAI--xlm-roberta-base" / "snapshots" / "0000tiny"
    tiny_model().save_pretrained(snapshot, format="hf")
    xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt").save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0000tiny")
    xlm_files = tmp_path / "xlm-files"  # a user's folder of released XLM BPE files
    xlm_files.mkdir()
    for name in ("codes_xnli_15", "vocab_xnli_15"):
        (xlm_files / name).write_bytes((assets / "xlm-bpe-fastbpe" / name).read_bytes())
    french = (assets / "tatoeba-laser-v1" / "tatoeba.fra-eng.fra").read_text(encoding="utf-8").splitlines()
    (tmp_path / "corpus.txt").write_text("\n".join(french[:200]) + "\n", encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def test_readme_python_examples_run(hub_cache, capsys):
    pytest.importorskip("onnxscript")  # the README exports to ONNX (the onnx extra)
    found = blocks("python")
    assert len(found) >= 2, "README lost its python examples"
    namespace: dict = {}
    for block in found:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert "torch.Size([1, 5, 1000])" in printed and "Paris is the " in printed


def test_readme_command_lines_run(hub_cache):
    """Each line in this process (cli.main, as the `xlmlib` command runs it); the first also as a user's fresh
    process, the entry point's own smoke test."""
    lines = [ln for block in blocks("bash") for ln in block.splitlines() if ln.startswith("xlmlib ")]
    assert lines, "README lost its xlmlib command examples"
    for line in lines:
        done = cli(*shlex.split(line)[1:])
        assert done.code == 0, f"{line}: {done.err}"
    fresh = run_fresh(*shlex.split(lines[0])[1:])
    assert fresh.returncode == 0, f"{lines[0]}: {fresh.stderr}"
