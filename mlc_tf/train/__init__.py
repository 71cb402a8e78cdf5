"""Fitting: the training run, its callbacks, losses, optimizers, distribution, self-training."""
