"""Container files: ``docker-compose.yml`` and ``Dockerfile`` against the spec and the real CLIs.

Docker cannot run here, so these tests check what can go wrong without it: the compose file is
valid under the Compose Specification's JSON Schema (``../shared/schemas/compose-spec.json``),
every command names a console script from ``[project.scripts]``, every argument is accepted by
that script's real ``argparse`` parser, and the Dockerfile copies what ``pip install .`` needs.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jsonschema.validators import validator_for

import device_server.cli
import trainer_client.cli

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "hil-server": device_server.cli.build_parser,
    "hil-train": trainer_client.cli.build_parser,
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    # The file says "https://json-schema.org/draft-07/schema"; jsonschema knows the draft by its
    # canonical id "http://json-schema.org/draft-07/schema#" and would otherwise fall back to the
    # latest draft with a warning. Resolve the declared draft, and refuse to guess.
    uri = schema["$schema"].replace("https://", "http://", 1)
    cls = validator_for({"$schema": uri}, default=None)
    assert cls is not None, f"unknown $schema {schema['$schema']!r}"
    cls.check_schema(schema)
    return cls(schema)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def dockerfile_cmd() -> list[str]:
    cmds = [args for op, args in dockerfile() if op == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    return json.loads(cmds[-1])  # exec form; the last CMD wins


def commands() -> dict[str, list[str]]:
    """Every command the images run: each compose service's, and the Dockerfile's default."""
    out = {name: svc["command"] for name, svc in compose()["services"].items()}
    out["Dockerfile CMD"] = dockerfile_cmd()
    return out


def test_compose_file_is_valid_under_the_compose_spec() -> None:
    doc = compose()
    compose_validator().validate(doc)
    assert "version" not in doc, "top-level `version` is obsolete"
    assert set(doc["services"]) == {"server", "trainer"}
    assert doc["services"]["trainer"]["depends_on"]["server"]["condition"] == "service_healthy"


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d["services"]["server"].update(comand=["hil-server"]), id="unknown-key"),
        pytest.param(lambda d: d["services"]["server"].update(ports={"8000": 8000}), id="ports-not-a-list"),
        pytest.param(lambda d: d["services"]["trainer"].update(depends_on={"server": {"condition": "up"}}),
                     id="bad-depends-on-condition"),
    ],
)
def test_compose_spec_rejects_a_broken_file(breakage: Callable[[dict], None]) -> None:
    doc = copy.deepcopy(compose())
    breakage(doc)
    assert list(compose_validator().iter_errors(doc)), "a broken compose file passed validation"


@pytest.mark.parametrize("where", ["server", "trainer", "Dockerfile CMD"])
def test_command_is_an_installed_console_script(where: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    command = commands()[where]
    assert isinstance(command, list) and command, f"{where}: command must be a non-empty list"
    assert command[0] in scripts, f"{where}: {command[0]!r} is not in [project.scripts] {sorted(scripts)}"
    # and the parser these tests use is the one behind that entry point
    assert scripts[command[0]] == f"{PARSERS[command[0]].__module__}:main"


@pytest.mark.parametrize("where", ["server", "trainer", "Dockerfile CMD"])
def test_command_arguments_are_accepted_by_the_real_parser(where: str) -> None:
    program, *args = commands()[where]
    try:
        PARSERS[program]().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{where}: `{shlex.join([program, *args])}` is refused by its parser (exit {exc.code})")


def test_trainer_talks_to_the_server_it_waits_for() -> None:
    services = compose()["services"]
    server = PARSERS["hil-server"]().parse_args(services["server"]["command"][1:])
    trainer = PARSERS["hil-train"]().parse_args(services["trainer"]["command"][1:])
    assert trainer.command == "demo"
    assert trainer.url == f"http://server:{server.port}"
    assert server.host == "0.0.0.0", "a server on loopback is unreachable from the trainer container"
    assert any(str(p).endswith(f":{server.port}") for p in services["server"]["ports"])


def test_dockerfile_copies_what_pip_install_needs() -> None:
    copied = set()
    for op, args in dockerfile():
        if op == "COPY":
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            copied.update(s.rstrip("/") for s in sources)
    assert {"pyproject.toml", "device_models", "device_server", "trainer_client"} <= copied, copied
    assert any(op == "RUN" and "pip install" in args for op, args in dockerfile())
