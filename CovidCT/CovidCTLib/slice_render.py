"""What a slice view displays, as pixels: the blended background + foreground image that
``vtkMRMLSliceLogic`` produces, without any OpenGL window.

The blend is a pure VTK imaging pipeline, so it runs headless (CI, servers) with no EGL or
X server; used by tests and to save review snapshots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support


def blended_slice_rgba(slice_logic) -> np.ndarray:
    """``(rows, columns, 4)`` uint8 RGBA of the slice view (row 0 = top of the view)."""
    connection = slice_logic.GetImageDataConnection()
    if connection is None:
        raise ValueError("The slice logic has no image pipeline (no slice node or scene?).")
    producer = connection.GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(connection.GetIndex())
    columns, rows, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    pixels = np.array(pixels).reshape(rows, columns, -1)
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full((rows, columns, 1), 255, pixels.dtype)], axis=2)
    return pixels[::-1].astype(np.uint8)  # VTK's first row is the bottom of the view


def save_slice_png(slice_logic, path) -> Path:
    """Write the slice view to a PNG (opaque RGB) with VTK's writer (no extra packages)."""
    rgba = blended_slice_rgba(slice_logic)[::-1, :, :3]  # back to VTK's bottom-up row order
    image = vtk.vtkImageData()
    image.SetDimensions(rgba.shape[1], rgba.shape[0], 1)
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(rgba).reshape(-1, 3), deep=True)
    image.GetPointData().SetScalars(scalars)
    path = Path(path)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path
