"""Talking to TF Serving: a REST/gRPC client and the models.config writer (needs the `serving` extra)."""
