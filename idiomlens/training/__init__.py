"""Training: the demo corpus generator and the small demo model's reproducible trainer.

- :mod:`idiomlens.training.idioms` — the hand-written idiom table (templates, meanings);
- :mod:`idiomlens.training.demo_data` — the shipped corpus and the training text;
- :mod:`idiomlens.training.small` — ``python -m idiomlens.training.small --config
  idiomlens/training/demo_config.json --out idiomlens/assets/demo_model``;
- :mod:`idiomlens.training.finetune` — ``finetune`` (HF Trainer + peft: full, BitFit,
  LoRA, IA3) and ``compare_checkpoints``.

Nothing here is imported by ``import idiomlens``.
"""
