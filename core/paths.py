"""Where the project's files are, for an editable and a non-editable install alike (the
templates ship as package data beside `core/`)."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "templates"
