"""Task models: the encoder plus a head. Heads compute logits; their losses are in losses.py.

Every task model runs one forward (TaskModel.forward): plan the call's layout and routes, encode, the
head's outputs, its loss when labels are given. A class supplies `outputs` (and `loss`), or `head` where
outputs and loss are one step (the masked-only LM loss). Head shapes follow the config's family (family.py):
XLM's (modeling_xlm) or XLM-R's (modeling_xlm_roberta / modeling_xlm_roberta_xl). Each class declares what
the rest of the package needs to know about it: its task name, its head modules, its transformers class
names, whether `xlmlib finetune` trains it; tasks.py lists the classes. Shape legend as in model.py.
"""

from __future__ import annotations

import torch
from torch import nn

from . import losses
from .checkpoint.load import load_model
from .checkpoint.save import save_model
from .config import ModelConfig
from .family import family_of
from .layout import Layout
from .linear import Linear, linear
from .model import Output, Transformer, fill_sinusoidal, init_weights
from .routes import Routes


class TaskModel(Transformer):
    """Common loading, saving and initialisation, and the facts each task class declares:

    task: the name xlmlib.load(task=...) takes (tasks.py lists the classes);
    head_prefixes: this model's own head modules (the loader initialises them when a checkpoint lacks them);
    hf_suffix: (head style, transformers' class name after the family prefix) pairs; a style absent has none;
    finetune_task: the `xlmlib finetune --task` name, where fine-tuning trains this class;
    causal: the model runs under the causal mask (picks CausalLM where transformers has one LM class).
    """

    task: str | None = None
    head_prefixes: tuple[str, ...] = ()
    hf_suffix: tuple[tuple[str, str], ...] = ()
    finetune_task: str | None = None
    causal: bool = False

    def forward(self, input_ids, attention_mask=None, langs=None, positions=None, token_type_ids=None,
                labels=None, output_hidden_states=False, cache=None, *, checked: bool = False, **head_inputs):
        """encode -> head -> loss, for every task model. checked: the caller ran check_inputs (the training
        step, on its CPU batch); head_inputs: what a head takes besides the hidden states (p_mask, ...)."""
        layout = self.plan(input_ids, attention_mask, cache)
        h, hidden = self.encode(input_ids, attention_mask, langs, positions, token_type_ids, output_hidden_states,
                                cache, layout=layout, checked=checked)
        out = self.head(h, layout, labels, **head_inputs)
        out.last_hidden_state, out.hidden_states, out.cache = h, hidden, cache
        return out

    def head(self, h, layout: Layout, labels=None, **head_inputs) -> Output:
        """The head's outputs, with the loss when labels are given."""
        out = self.outputs(h, layout.routes, **head_inputs)
        if labels is not None:
            out.loss = self.loss(out, labels)
        return out

    def outputs(self, h, routes: Routes) -> Output:
        raise NotImplementedError

    def loss(self, out: Output, labels, reduction: str = "mean"):
        raise ValueError(f"{type(self).__name__} has no loss; use a task model (MaskedLM, SequenceClassifier, ...) "
                         "for labels")

    @classmethod
    def head_options_for(cls, keys) -> dict:
        """Constructor options a checkpoint's weight names decide (none unless a class says so)."""
        return {}

    @classmethod
    def from_pretrained(cls, src, *, dtype=None, device=None, **head_options):
        """Load from a directory, checkpoint file or hub name; head_options go to the class constructor."""
        return load_model(cls, src, dtype=dtype, device=device, head_options=head_options)

    def save_pretrained(self, directory, format: str = "xlmlib") -> None:
        """Write safetensors + config to `directory` (format "xlmlib" or "hf"); every file is written atomically."""
        save_model(self, directory, format=format)

    def reset_parameters(self, prefixes: tuple[str, ...] | None = None) -> None:
        """Initialise all modules, or only those under the given name prefixes (new heads)."""
        for name, module in self.named_modules():
            if prefixes is None or any(name == p or name.startswith(p + ".") for p in prefixes):
                init_weights(module, self.config.init_std)
        if self.config.sinusoidal and prefixes is None:
            fill_sinusoidal(self.embed)

    def head_options(self) -> dict:
        """Constructor options that a reload needs (saved beside the config)."""
        return {}

    def quantize(self, mode: str = "int8"):
        """Convert in place for inference: "int8" (dynamic, Linear layers and the token table), "bf16"
        (LayerNorm kept in fp32) or "fp32-onednn" (the same fp32 numbers, the Linear weights prepacked for
        oneDNN's matmul, which plain CPU inference already uses unpacked). Returns the model."""
        from .precision import quantize

        return quantize(self, mode)


class Encoder(TaskModel):
    """The bare encoder. pooler=True adds XLM-R's tanh pooler over the first token (`out.pooled`)."""

    task = "encoder"
    head_prefixes = ("pooler",)
    hf_suffix = (("xlm", "Model"), ("roberta", "Model"))

    def __init__(self, config: ModelConfig, *, pooler: bool = False):
        super().__init__(config)
        self.pooler = Pooler(config) if pooler else None

    def head_options(self):
        return {"pooler": self.pooler is not None}

    @classmethod
    def head_options_for(cls, keys) -> dict:
        """The pooler is built when the checkpoint has one (HF XLM-R base models do)."""
        return {"pooler": any(k.startswith("pooler.") for k in keys)}

    def outputs(self, h, routes: Routes) -> Output:
        return Output(pooled=self.pooler(h, routes) if self.pooler is not None else None)


class Pooler(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.dense = Linear(cfg.dim, cfg.dim)

    def forward(self, h, routes: Routes | None = None):
        return torch.tanh(self.dense(h[:, 0], routes))


class LMHead(nn.Module):
    """Output projection tied to the token embeddings, plus its own bias. XLM-R first applies
    dense -> gelu -> LayerNorm (modeling_xlm_roberta XLMRobertaLMHead); XLM projects directly
    (modeling_xlm XLMPredLayer)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        transform = family_of(cfg).lm_head_transform
        self.dense = Linear(cfg.dim, cfg.dim) if transform else None
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if transform else None
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.quantized: nn.Module | None = None  # int8 projection set by quantize("int8")

    def transform(self, h, routes: Routes | None = None):
        if self.dense is None:
            return h
        return self.norm(self.dense(h, routes, activation="gelu"))

    def forward(self, h, tokens: nn.Module, routes: Routes | None = None):
        """Logits over the vocabulary of `tokens`, the (tied) token-embedding module."""
        if self.quantized is not None:
            return self.quantized(self.transform(h, routes))
        return linear(self.transform(h, routes), tokens.weight, self.bias, routes=routes)


class MaskedLM(TaskModel):
    """Masked-LM head. labels: token ids at predicted positions, -100 elsewhere (no shift).

    In training mode with labels, only the predicted rows are projected onto the vocabulary (M x V instead
    of B x T x V; the same loss, tests/unit/test_model.py) and out.logits is None."""

    task = "masked-lm"
    head_prefixes = ("lm_head",)
    hf_suffix = (("xlm", "WithLMHeadModel"), ("roberta", "ForMaskedLM"))
    shift = False  # CausalLM: position t predicts labels[t + 1]

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.lm_head = LMHead(config)

    def head(self, h, layout: Layout, labels=None, **head_inputs) -> Output:
        """Logits and loss; in training with labels, the loss of the predicted rows alone (no logits)."""
        if head_inputs:
            raise TypeError(f"{type(self).__name__} got unexpected inputs: {', '.join(head_inputs)}")
        targets = None if labels is None else (labels[:, 1:] if self.shift else labels)
        scored = h[:, :-1] if self.shift else h
        if targets is not None and self.training and self.lm_head.quantized is None:
            return Output(loss=self.lm_loss(scored, targets, routes=layout.routes).loss)
        logits = self.lm_head(h, self.embed.tokens, layout.routes)
        loss = None if targets is None else losses.full_lm_loss(logits[:, :-1] if self.shift else logits, targets)
        return Output(logits=logits, loss=loss)

    def lm_loss(self, h, labels, *, reduction: str = "mean", rows: int | None = None,
                routes: Routes | None = None) -> losses.LMLoss:
        """The LM loss of hidden states h (B T D) against aligned labels (B T, no shift), with the logits
        and labels of the predicted rows, which alone are projected onto the vocabulary (exactly `rows` of
        them with filler, when given: losses.masked_lm_loss). A quantized head projects every row."""
        if self.lm_head.quantized is None:
            return losses.masked_lm_loss(h, labels, self.embed.tokens.weight, self.lm_head.bias,
                                         transform=lambda x: self.lm_head.transform(x, routes), reduction=reduction,
                                         rows=rows, routes=routes)
        logits = self.lm_head(h, self.embed.tokens, routes)
        selected = labels != losses.IGNORE_INDEX
        return losses.LMLoss(losses.full_lm_loss(logits, labels, reduction=reduction), logits[selected],
                             labels[selected])


class CausalLM(MaskedLM):
    """Next-token LM under the causal mask. labels are aligned with input_ids and shifted inside: position t
    predicts labels[t+1] (as XLMRobertaForCausalLM; HF's XLMWithLMHeadModel instead expects pre-shifted labels)."""

    task = "causal-lm"
    hf_suffix = (("xlm", "WithLMHeadModel"), ("roberta", "ForCausalLM"))
    causal = True
    shift = True

    def __init__(self, config: ModelConfig):
        super().__init__(config.replace(causal=True))


class ClassificationHead(nn.Module):
    """First-token classifier: XLM-R dropout -> dense -> tanh -> dropout -> out_proj;
    XLM (XLMSequenceSummary, summary_type "first") dropout -> out_proj."""

    def __init__(self, cfg: ModelConfig, n_out: int):
        super().__init__()
        self.dense = Linear(cfg.dim, cfg.dim) if family_of(cfg).classifier_hidden else None
        self.dropout = nn.Dropout(_classifier_dropout(cfg))
        self.out_proj = Linear(cfg.dim, n_out)

    def forward(self, h, routes: Routes | None = None):
        x = self.dropout(h[:, 0])
        if self.dense is not None:
            x = self.dropout(torch.tanh(self.dense(x, routes)))
        return self.out_proj(x, routes)


def _classifier_dropout(cfg: ModelConfig) -> float:
    return cfg.dropout if cfg.classifier_dropout is None else cfg.classifier_dropout


class SequenceClassifier(TaskModel):
    """labels: class ids (cross-entropy), floats with num_labels == 1 (MSE regression), or a float
    multi-hot matrix (BCE), the three problem types of HF's sequence classifiers. The classes' names
    (labels=) are saved with the model (config.labels, transformers' id2label)."""

    task = "sequence-classification"
    head_prefixes = ("classifier",)
    hf_suffix = (("xlm", "ForSequenceClassification"), ("roberta", "ForSequenceClassification"))
    finetune_task = "sequence"

    def __init__(self, config: ModelConfig, *, num_labels: int | None = None, labels=None):
        config = config.with_labels(num_labels, labels)
        super().__init__(config)
        self.classifier = ClassificationHead(config, config.num_labels)

    def outputs(self, h, routes: Routes) -> Output:
        return Output(logits=self.classifier(h, routes))

    def loss(self, out: Output, labels, reduction: str = "mean"):
        return losses.classification_loss(out.logits, labels, self.config.num_labels, reduction=reduction)


class TokenClassifier(TaskModel):
    """labels: one class id per token, -100 where no label applies."""

    task = "token-classification"
    head_prefixes = ("classifier",)
    hf_suffix = (("xlm", "ForTokenClassification"), ("roberta", "ForTokenClassification"))
    finetune_task = "token"

    def __init__(self, config: ModelConfig, *, num_labels: int | None = None, labels=None):
        config = config.with_labels(num_labels, labels)
        super().__init__(config)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = Linear(config.dim, config.num_labels)

    def outputs(self, h, routes: Routes) -> Output:
        return Output(logits=self.classifier(self.dropout(h), routes))

    def loss(self, out: Output, labels, reduction: str = "mean"):
        return losses.token_loss(out.logits, labels, reduction=reduction)


class MultipleChoice(TaskModel):
    """Inputs of shape B C T; logits B C. XLM-R: tanh pooler -> dropout -> Linear(D, 1); XLM
    (XLMForMultipleChoice): summary Linear(D, num_labels) -> logits_proj Linear(num_labels, 1)."""

    task = "multiple-choice"
    head_prefixes = ("pooler", "classifier", "logits_proj")
    hf_suffix = (("xlm", "ForMultipleChoice"), ("roberta", "ForMultipleChoice"))

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        pooled = family_of(config).choice_pooler
        self.pooler = Pooler(config) if pooled else None
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = Linear(config.dim, 1 if pooled else config.num_labels)
        self.logits_proj = None if pooled else Linear(config.num_labels, 1)

    def forward(self, input_ids, attention_mask=None, langs=None, positions=None, token_type_ids=None,
                labels=None, output_hidden_states=False, cache=None, *, checked: bool = False):
        """The choices (B C T) run as B·C rows of TaskModel.forward; the logits come back B C."""
        flat = [_flatten_choices(t) for t in (input_ids, attention_mask, langs, positions, token_type_ids)]
        return super().forward(*flat, labels=labels, output_hidden_states=output_hidden_states, cache=cache,
                               checked=checked, n_choices=input_ids.shape[1])

    def outputs(self, h, routes: Routes, n_choices: int = 1) -> Output:
        if self.pooler is not None:
            logits = self.classifier(self.dropout(self.pooler(h, routes)), routes)
        else:
            logits = self.logits_proj(self.classifier(self.dropout(h[:, 0]), routes), routes)
        return Output(logits=logits.view(-1, n_choices))

    def loss(self, out: Output, labels, reduction: str = "mean"):
        return losses.choice_loss(out.logits, labels, reduction=reduction)


def _flatten_choices(t):
    if t is None or not torch.is_tensor(t) or t.dim() < 3:
        return t
    return t.reshape(-1, t.shape[-1])
