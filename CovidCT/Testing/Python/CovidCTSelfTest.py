"""Entry point for ``slicer_add_python_unittest`` (ctest) and for running the self-test by hand.

In Slicer: Developer Tools > Self Tests > CovidCT, or the Reload & Test button of the
module; from a build tree: ``ctest -R CovidCTSelfTest``.  The unittest loader collects the
``test_*`` methods of the module's own test case (:class:`CovidCT.CovidCTTest`), so the
test lives next to the code it checks and runs once, not twice.
"""

from CovidCT import CovidCTTest  # noqa: F401  (collected by the unittest loader)

if __name__ == "__main__":
    import unittest

    unittest.main()
