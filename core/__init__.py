"""What every process shares and no process owns: settings, paths and the wiring function.

`services/`, `models/`, `tasks/`, the CLI, the worker and the web process all read from here;
nothing here imports a process package (`worker/`, `cli/`, `web/`).
"""
