"""MRML half of the CovidCT Slicer module.

Every function here takes the scene and nodes it works on as arguments, so the same code
runs inside the Slicer application and in pytest on the ``slicer-core`` wheel (a real
``vtkMRMLScene`` without Qt).  Nothing in this package imports Qt; the widget in
``CovidCT.py`` stays a thin layer over these functions.

Modules are imported on demand (``from CovidCTLib import volume_nodes``) so that the
process runner, which needs neither VTK nor MRML, can be used on its own.
"""
