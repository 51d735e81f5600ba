"""Training: the Trainer, checkpoints, task trainer, sweeps and experiments."""
