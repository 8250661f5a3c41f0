"""Training learns, and the completion objective puts the loss on completion tokens only."""

from __future__ import annotations

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from idiomlens.models import tiny_tokenizer
from idiomlens.training.finetune import finetune
from idiomlens.training.finetune.data import PadCollator, tokenize_records

RECORDS = [
    {"prompt": f"Q: what does {idiom} mean? A:", "completion": f" {meaning}."}
    for idiom, meaning in [
        ("spill the beans", "reveal a secret"),
        ("kick the bucket", "die"),
        ("break the ice", "start a conversation"),
        ("a piece of cake", "something easy"),
        ("under the weather", "ill"),
        ("hit the sack", "go to bed"),
    ]
]


def _hf(folder):
    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


def _lm_loss(model, texts) -> float:
    """Mean next-token cross-entropy over every token after BOS, one text at a time."""
    tok = tiny_tokenizer()
    total = count = 0.0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor(
                [[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]]
            )
            logits = model(ids).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    return total / count


def _completion_loss(model, records, *, prompt_too: bool = False) -> float:
    """Token-weighted cross-entropy over the completion tokens (optionally prompt too)."""
    tok = tiny_tokenizer()
    total = count = 0.0
    with torch.no_grad():
        for r in records:
            prompt = [tok.bos_token_id, *tok(r["prompt"], add_special_tokens=False)["input_ids"]]
            completion = tok(r["completion"], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + completion])
            logits = model(ids).logits[0, :-1]
            first = 1 if prompt_too else len(prompt)
            targets = ids[0, first:]
            total += torch.nn.functional.cross_entropy(
                logits[first - 1 :], targets, reduction="sum"
            ).item()
            count += len(targets)
    return total / count


def test_loss_after_training_is_clearly_below_the_base(run, base_dir, corpus):
    result = run("lora", max_steps=30, checkpoints=0)
    texts = [ex.text for ex in corpus]
    before = _lm_loss(_hf(base_dir("gpt2")), texts)
    # the trained adapter, evaluated through peft, independently of idiomlens
    after_model = PeftModel.from_pretrained(_hf(base_dir("gpt2")), result.final).eval()
    after = _lm_loss(after_model, texts)
    assert after < before - 0.5, (before, after)
    history = result.history
    assert history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean() - 0.3
    # the first logged loss is the loss of the first batch at the base weights
    assert abs(history["loss"].iloc[0] - before) < 0.5


def test_completion_loss_covers_completion_tokens_only(base_dir, tmp_path):
    # GPT-NeoX's tiny config has no dropout, so the training-mode loss is deterministic
    base = _hf(base_dir("neox"))
    result = finetune(
        base_dir("neox"),
        RECORDS,
        method="full",
        objective="completion",
        out=tmp_path / "run",
        max_steps=1,
        batch_size=len(RECORDS),
        lr=1e-6,
        checkpoints=0,
        progress=False,
        device="cpu",
    )
    logged = result.history.loc[0, "loss"]  # the one step's batch: all records, base weights
    expected = _completion_loss(base, RECORDS)
    assert abs(logged - expected) < 1e-4, (logged, expected)
    assert abs(logged - _completion_loss(base, RECORDS, prompt_too=True)) > 1e-2


def test_prompt_positions_get_no_gradient(base_dir):
    model = _hf(base_dir("gpt2"))
    tok = tiny_tokenizer()
    fields = ("prompt", "completion")
    features = tokenize_records(RECORDS, tok, objective="completion", max_length=64, fields=fields)
    batch = PadCollator(pad_id=0)(features)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.detach().requires_grad_(True)

    def loss_of(labels):
        shifted = labels[:, 1:].reshape(-1)
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), shifted, ignore_index=-100
        )

    loss = loss_of(batch["labels"])
    (grad,) = torch.autograd.grad(loss, logits)
    masked = batch["labels"][:, 1:] == -100  # positions whose target is BOS, prompt or padding
    assert masked.any() and (~masked).any()
    assert grad[:, :-1][masked].abs().max() == 0
    assert grad[:, :-1][~masked].abs().amax(-1).min() > 0
    # the HF model's own loss on our labels equals the masked loss
    hf_loss = model(**batch).loss
    assert torch.allclose(hf_loss, loss, atol=1e-5)
    # the labels of prompt positions do not depend on the prompt: any prompt content gives -100
    swapped = [{**r, "prompt": r["prompt"].upper()} for r in RECORDS]
    relabelled = tokenize_records(
        swapped, tok, objective="completion", max_length=64, fields=fields
    )
    for a, b in zip(features, relabelled, strict=True):
        n_prompt = sum(1 for t in a["labels"] if t == -100)
        assert all(
            t == -100 for t in b["labels"][: len(b["labels"]) - (len(a["labels"]) - n_prompt)]
        )
        assert a["labels"][n_prompt:] == b["labels"][-(len(a["labels"]) - n_prompt) :]
