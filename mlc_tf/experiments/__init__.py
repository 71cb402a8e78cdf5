"""Experiment drivers that run training several times: cross-validation, growing, ensembles of trained runs."""
