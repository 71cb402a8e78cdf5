"""Training: the run (fit, calibrate, evaluate, save), its callbacks, losses, optimizers and distribution."""
