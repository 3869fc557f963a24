"""The Procfile and docker-compose.yml describe the same service (Docker does not run here, so
this test is what keeps them in agreement)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Options that must differ inside a container: Flower listens on the container's interface so
# that the published port reaches it; the Procfile keeps it on loopback.
CONTAINER_ONLY_OPTIONS = {"flower": {"--address"}}
LONG_RUNNING = ("web", "worker", "beat", "flower")
CELERY = ("worker", "beat", "flower")


def procfile() -> dict[str, str]:
    """name -> command, as honcho reads it (comment lines are not processes)."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            processes[match.group(1)] = match.group(2).strip()
    return processes


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def words(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def comparable(name: str, command) -> list[str]:
    dropped = CONTAINER_ONLY_OPTIONS.get(name, set())
    return [w for w in words(command) if w.split("=", 1)[0] not in dropped]


def test_procfile_has_the_long_running_processes_and_nothing_that_exits():
    processes = procfile()
    assert set(processes) == set(LONG_RUNNING)
    for name in CELERY:
        assert words(processes[name])[:3] == ["celery", "-A", "worker"]
        assert words(processes[name])[3] == name
    assert "-E" in words(processes["worker"]), "Flower needs the worker's task events"
    web = words(processes["web"])
    assert web[:3] == ["uvicorn", "--factory", "web.app:create_app"]
    assert web[web.index("--port") + 1] == "${PORT:-8000}"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_procfile_process_is_a_compose_service_with_the_same_command(name):
    services = compose()["services"]
    assert name in services
    assert comparable(name, services[name]["command"]) == comparable(name, procfile()[name])


def test_compose_migrates_once_before_the_processes_start():
    services = compose()["services"]
    assert words(services["migrate"]["command"]) == ["sessionpack", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_every_app_service_uses_one_image_and_the_real_servers():
    services = compose()["services"]
    app = ["migrate", *LONG_RUNNING]
    assert {services[name]["image"] for name in app} == {"sessionpack:latest"}
    assert all(services[name]["build"] == "." for name in app)
    assert (ROOT / "Dockerfile").exists()
    for name in app:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["BROKER_URL"] == "redis://sessionpack:${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}@redis:6379/0"
    assert services["postgres"]["image"].split(":")[1].startswith("16")
    assert services["redis"]["image"].split(":")[1].startswith("7")


def test_health_checks_and_volumes():
    data = compose()
    services = data["services"]
    for name in ("postgres", "redis", "web", "worker", "flower"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(services["redis"]["healthcheck"]["test"])
    named = set(data["volumes"])
    for name in ("postgres", "redis", "worker", "beat"):
        mounted = {v.split(":", 1)[0] for v in services[name]["volumes"]}
        assert mounted & named, f"{name} keeps its state in a named volume"


def test_flower_is_authenticated_and_published_on_loopback_only():
    flower = compose()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def referenced_variables(text: str) -> set[str]:
    """`${NAME}`, `${NAME:-default}`, `${NAME:?message}`; `$${NAME}` is the container's shell."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def env_example_names() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_env_example_names_every_variable_compose_references():
    referenced = referenced_variables((ROOT / "docker-compose.yml").read_text())
    assert referenced >= {"POSTGRES_PASSWORD", "SECRET_KEY", "FLOWER_BASIC_AUTH"}
    assert referenced - env_example_names() == set()


def test_env_example_names_every_setting_the_service_reads():
    from core.settings import Settings

    read = {(field.validation_alias or name).upper() for name, field in Settings.model_fields.items()
            if name != "extra"} - {"SESSIONPACK_VAR_DIR"}
    # Per-process tuning knobs with sound defaults need not be in a first .env.
    tuning = {"REMINDER_TICK_SECONDS", "OUTBOX_SWEEP_SECONDS", "APPROVAL_EXPIRY_HOURS",
              "CALENDAR_BUSY_CACHE_SECONDS", "HTTP_TIMEOUT_SECONDS", "ZOOM_API_BASE", "ZOOM_OAUTH_URL",
              "WEBEX_API_BASE", "GOTO_API_BASE"}
    assert read - tuning - env_example_names() == set()


def test_a_non_editable_install_ships_every_template_and_migration():
    """pyproject's package-data globs cover every file under templates/ and models/migrations/
    (a template left out shows up only at runtime, as TemplateNotFound in an installed wheel)."""
    import fnmatch
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    missing = []
    for package, folder in (("templates", ROOT / "templates"), ("models", ROOT / "models" / "migrations")):
        for path in folder.rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            if path.suffix == ".py" and package == "models":
                continue  # .py files of a package ship anyway
            if not any(fnmatch.fnmatchcase(relative, g) and relative.count("/") == g.count("/")
                       for g in package_data.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert missing == [], f"not in [tool.setuptools.package-data]: {missing}"


def test_flowers_task_list_shows_the_arguments_that_carry_the_booking_id():
    flower = words(procfile()["flower"])
    columns = next(w.split("=", 1)[1] for w in flower if w.startswith("--tasks_columns="))
    assert {"name", "uuid", "state", "args", "kwargs"} <= set(columns.split(","))


def test_the_image_copies_every_package_the_project_installs():
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert packages - copied == set()
