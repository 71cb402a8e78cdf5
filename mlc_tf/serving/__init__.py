"""Shipping a trained model.

SavedModel export, batch prediction, TF Serving clients and models.config.

export and prediction need TensorFlow only; client and models_config need the `serving` extra.
"""
