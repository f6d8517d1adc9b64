"""The corpus's cases, one module per kind of input.

Importing this package registers every case in :data:`bad_inputs.framework.CASES`, in
the order below (the order of the table in ``docs/robustness.md``: keep it unsorted).
"""

from bad_inputs.cases import paths, dicom, volumes, images, weights, devices, output  # noqa: F401
