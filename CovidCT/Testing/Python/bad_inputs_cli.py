"""The covidct command line with the bad-input corpus's test doubles installed.

Run by the cases that need a separate process (``bad_inputs.runners.cli_command``)::

    python bad_inputs_cli.py [--fake-models] [--pause-after-lung-mask] COVIDCT-ARGS...

``--fake-models`` swaps the classifier and enhancer for deterministic stand-ins (the
heatmap is the lung-windowed CT inside the lung mask), so the pipeline's plumbing
(loading, geometry, writing, cancelling) is tested without the trained weights.
``--pause-after-lung-mask`` holds the run inside the lung-mask stage until it is
cancelled (the SIGTERM case).  The file sits next to the helpers, so running it puts
them on the path.
"""

from __future__ import annotations

import contextlib
import sys

from bad_inputs.doubles import fake_models, pause_after_lung_mask


def main(argv=None) -> int:
    from covidct import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        if "--pause-after-lung-mask" in argv:
            argv.remove("--pause-after-lung-mask")
            for patch in pause_after_lung_mask():
                stack.enter_context(patch)
        if "--fake-models" in argv:
            argv.remove("--fake-models")
            stack.enter_context(fake_models())
        return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
