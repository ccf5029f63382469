"""Firmware regression checks for CI: baselines of outputs, instructions, estimated cycles, arena
and flash per model and board (``mcuc regress``), Robot Framework suites for renode-test
(``mcuc export-robot``) and a pytest plugin (``pytest --mcuc-baseline``).

Modules: schema (the baseline file), measure (one model's run), compare (what moved), run (many
models, in parallel), junit, robot, pytest_plugin. Nothing is imported here, so that pytest
loading the plugin does not load the compiler.
"""
