"""Classifier research: slice data sets, training and ensembles, release, evaluation, window grid."""
