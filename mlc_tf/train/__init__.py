"""Fitting: the training run, its callbacks, losses, optimizers and schedules, distribution, time
budget and its fallback, self-training."""
