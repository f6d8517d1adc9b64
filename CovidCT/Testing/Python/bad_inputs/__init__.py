"""A corpus of bad and awkward inputs, generated on the fly (no stored binaries).

Each case is a function that builds its input in a scratch folder and returns the
command line to run (:class:`Prepared`), registered with the outcome CovidCT must give
(:class:`Expected`): success, or one specific error class, exit code and message.
``test_robustness_corpus.py`` runs every case; ``tools/robustness_table.py`` turns the
registry into ``docs/robustness.md`` so the documented table never drifts from the tests.

Modules: ``framework`` (the case and registry types), ``building`` (phantom scans,
writers, command lines, snapshots), ``doubles`` (stand-in models, simulated failures),
``runners`` (in-process, subprocess, SIGTERM, two at once), ``checks`` (extra checks on
successes) and ``cases/`` (one module per kind of input).  Importing the package
registers every case; the names below stay importable as ``bad_inputs.NAME``.
The cases that need a separate process run ``bad_inputs_cli.py`` (the CLI with the
doubles installed).
"""

from bad_inputs.framework import (  # noqa: F401
    CASES, READY_MARKER, SUBPROCESS_TIMEOUT_S, Case, Expected, Prepared, RunResult, case,
)
from bad_inputs.building import (  # noqa: F401
    SCAN_GEOMETRY, analyze_argv, cuda_available, edit_series, grey_slice_uint8, is_root,
    partial_leftovers, scan_hu, snapshot, write_scan, write_volume,
)
from bad_inputs.doubles import (  # noqa: F401
    disk_full_on_text_write, disk_full_on_volume_write, fake_classify_volume, fake_enhance_volume,
    fake_models, gpu_out_of_memory_in_classifier, gpu_out_of_memory_in_enhancer, permission_denied_for,
)
from bad_inputs.runners import (  # noqa: F401
    cli_command, run_cancelled_by_sigterm, run_case, run_in_process, run_in_subprocess,
    run_two_at_once, subprocess_env,
)
from bad_inputs.checks import expect_complete_analysis, expect_info_json  # noqa: F401
from bad_inputs import cases  # noqa: F401,E402  (registers every case in CASES)
from bad_inputs.cases.weights import classifier_weights  # noqa: F401
