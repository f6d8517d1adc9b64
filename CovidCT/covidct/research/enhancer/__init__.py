"""Enhancer research: patch data, GAN and budgeted training, the feature encoder, evaluation."""
