"""Experiment drivers that fit many times: cross-validation, growing, ensembles of runs."""
