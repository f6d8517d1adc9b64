"""Research code: data sets, training, release and evaluation of the models.

Not part of the Slicer extension (its CMake list leaves this package out) and never
imported by the runtime; it imports the runtime (networks, inference, metrics) to train
and measure what the product ships.  The train/evaluate commands are registered by
:mod:`covidct.cli` only when this package is installed.
"""
