"""Docs kept honest: every setting and every CLI command is in the README."""

from __future__ import annotations

from pathlib import Path

import click

from patientpdf.cli.main import cli
from patientpdf.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`PATIENTPDF_{name.upper()}`" in README, name


def _commands(group: click.Group, prefix: str = "patientpdf") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_cli_command_is_documented() -> None:
    for command in _commands(cli):
        assert command in README, command
