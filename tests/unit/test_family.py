"""The family facts (family.py) and the task registry (tasks.py): each fact in one place, read by the rest.

Expected framings and class names are those of shared/reference/formats.md (sections 1-5); the registry
test defines a new head in the test itself to show that a class is all a head needs.
"""

from __future__ import annotations

import pytest

import xlmlib
from xlmlib import tasks
from xlmlib.checkpoint.hf import TABLES, table_for
from xlmlib.family import FAMILIES, XLM, XLM_R, XLM_R_XL, Framing, family_of
from xlmlib.heads import TaskModel


@pytest.mark.parametrize("preset", xlmlib.list_presets())
def test_every_preset_names_its_family_and_the_family_its_preset(preset):
    cfg = xlmlib.ModelConfig.from_preset(preset)
    family = family_of(cfg)
    expected = XLM if preset.startswith(("xlm-mlm", "xlm-clm")) else (
        XLM_R_XL if preset.endswith(("-xl", "-xxl")) else XLM_R)
    assert family is expected
    assert family_of(xlmlib.ModelConfig.from_preset(family.preset)) is family
    assert table_for(cfg) is TABLES[family.name]


def test_framings_of_the_families():
    xlm, xlmr = xlmlib.ModelConfig.from_preset("xlm-mlm-enfr-1024"), xlmlib.ModelConfig.from_preset("xlm-roberta-base")
    # XLM's own code: `</s> A </s> B </s>` (XNLI) and TLM `</s> s1 </s> </s> s2 </s>` (concat_batches).
    assert XLM.framing(xlm).frame([7], [8]) == [1, 7, 1, 8, 1]
    assert XLM.tlm_framing(xlm).frame([7], [8]) == [1, 7, 1, 1, 8, 1]
    # XLM-R: `<s> A </s></s> B </s>`, in training, TLM and its tokenizer alike.
    assert XLM_R.framing(xlmr).frame([7], [8]) == XLM_R.tlm_framing(xlmr).frame([7], [8]) == [0, 7, 2, 2, 8, 2]
    # transformers' XLMTokenizer opens with <s> (id 0).
    assert XLM.tokenizer_framing(0, 1).frame([7], [8]) == [0, 7, 1, 8, 1]
    f = Framing(0, 2, gap=1)
    assert f.frame(["a"], ["b"], special=lambda _: None) == [None, "a", None, None, "b", None]
    assert f.n_special() == 2 and f.n_special(pair=True) == 4 and f.second_start(3) == 5
    assert f.strip(f.frame([5, 6])) == [5, 6]


def test_transformers_class_names_come_from_the_family_and_the_class():
    # formats.md sections 1 and 3 (XLMForQuestionAnsweringSimple is XLM's plain span head).
    assert XLM.hf_architecture(xlmlib.MaskedLM) == XLM.hf_architecture(xlmlib.CausalLM) == "XLMWithLMHeadModel"
    assert XLM.hf_architecture(xlmlib.QuestionAnswering) == "XLMForQuestionAnsweringSimple"
    assert XLM.hf_architecture(xlmlib.QuestionAnsweringBeam) == "XLMForQuestionAnswering"
    assert XLM_R.hf_architecture(xlmlib.QuestionAnsweringBeam) is None
    assert XLM_R_XL.hf_architecture(xlmlib.CausalLM) == "XLMRobertaXLForCausalLM"
    assert XLM_R.hf_architecture(xlmlib.Encoder) == "XLMRobertaModel"
    for family in FAMILIES:  # every architecture a class names has a weight table entry
        for cls in tasks.task_classes():
            arch = family.hf_architecture(cls)
            assert arch is None or arch in TABLES[family.name].heads, arch


def test_one_table_for_load_saved_names_and_finetuning():
    assert tasks.task_class("masked-lm") is tasks.task_class("MaskedLM") is xlmlib.MaskedLM
    assert tasks.task_class("sequence") is xlmlib.SequenceClassifier  # `xlmlib finetune --task sequence`
    assert set(tasks.finetune_tasks()) == {"sequence", "token", "qa", "qa-beam"}
    assert set(tasks.task_names()) == {"encoder", "masked-lm", "causal-lm", "sequence-classification",
                                       "token-classification", "question-answering", "question-answering-beam",
                                       "multiple-choice", "translation"}
    with pytest.raises(ValueError, match="unknown task 'summarize'; choose one of: encoder, masked-lm"):
        tasks.task_class("summarize")


def test_the_task_table_lists_every_task_class():
    """One literal table (tasks.py): every task model of the package is in it under its own task name, the
    table answers without importing anything first, and a class defined elsewhere is not a task by being
    defined (registration by import side effect is gone)."""
    import subprocess
    import sys

    code = ("import xlmlib.tasks as t; print(sorted(t.task_names())); "
            "print(t.task_class('SequenceClassifier').__name__, t.task_class('sequence').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    listed = {cls.task: cls for cls in tasks.task_classes()}
    assert out[0] == str(sorted(listed)) and out[1] == "SequenceClassifier SequenceClassifier"

    def subclasses(cls):
        return {cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))}

    package = {c for c in subclasses(TaskModel) if c.__module__.startswith("xlmlib.") and c.task}
    assert package | {xlmlib.Translator} == set(listed.values())

    class Scorer(TaskModel):
        task = "test-scorer"

    with pytest.raises(ValueError, match="unknown task 'test-scorer'"):
        tasks.task_class("test-scorer")
