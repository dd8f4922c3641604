"""Pretraining runs: ``mcrl-pretrain`` (hydra) and ``mcrl-pretrain-eval`` on the trainer core."""
