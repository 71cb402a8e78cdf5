"""Fitting: the training run (fit, then save), its callbacks, losses, optimizers, distribution, self-training."""
