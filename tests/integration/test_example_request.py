"""The repository documents itself (issue 14): the example request under examples/ is booked as it
is with `book --first-free` on the demo's page, on any date; `book --help` lists the request's
fields; README and docs/ link only to files inside the repository."""
from __future__ import annotations

import re
from pathlib import Path

from cli.demo import demo_config
from tests.integration.test_never_pending import Gateway
from tests.support import apply_config, inline_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "request-demo.json"


def test_the_example_request_is_booked_as_it_is_with_first_free(container, clock):
    container.__dict__["payments"] = Gateway()
    apply_config(container, demo_config())
    with inline_cli(container) as cli:
        code, first = cli("book", str(EXAMPLE), "--first-free", "--wait", "30")
        assert code == 0 and first["status"] == "confirmed", first
        assert (first["booking_page"], first["event_type"], first["price"]) == ("demo", "package-3", "150.00")
        days = [s["start"][:10] for s in first["sessions"]]
        assert len(set(days)) == 3 and min(s["start"] for s in first["sessions"]) > clock().isoformat()[:10]
        # Again: a new request_id and the next free times, not the first booking answered again.
        code, second = cli("book", str(EXAMPLE), "--first-free", "--wait", "30")
        assert code == 0 and second["status"] == "confirmed" and second["id"] != first["id"]


def test_without_first_free_the_example_needs_its_slots(container):
    apply_config(container, demo_config())
    with inline_cli(container) as cli:
        code, out = cli("book", str(EXAMPLE))
    assert code == 2 and out["error"]["code"]


def test_book_help_lists_the_request_fields():
    from click.testing import CliRunner

    from cli.main import main

    text = CliRunner().invoke(main, ["book", "--help"]).output
    for field in ("request_id", "booking_page", "event_type", "customer", "slots", "payment_method", "--first-free"):
        assert field in text


def test_readme_and_docs_link_only_inside_the_repository():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 6  # README, the index and the five documents
    for page in pages:
        text = page.read_text()
        assert "../shared" not in text and "CONTRACT.md" not in text, page
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target}"


def test_docs_name_every_command():
    from cli.main import main

    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    assert sorted(name for name in main.commands if f"sessionpack {name}" not in cli_doc) == []
