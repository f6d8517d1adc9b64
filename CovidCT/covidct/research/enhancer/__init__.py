"""Enhancer research: patch data, degradations for training, GAN and budgeted training, evaluation."""
