"""``--help`` that teaches: every command's help ends with 2-4 examples that parse, and shows no typer artefacts."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main
from typer.testing import CliRunner

from fer_batch._help import EXAMPLES
from fer_batch.cli import app

COMMANDS = ["analyze", "render", "webcam", "summary", "report", "models"]
ARTEFACTS = re.compile(r"<(bool|str|int|float|path|list\[[a-z]+\])>|\{[a-z_]+\}|\{[A-Z.]+\}")


def help_of(*args: str) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_ends_with_real_examples_and_fits_80_columns(command: str) -> None:
    text = help_of(*([command] if command else []))
    assert not ARTEFACTS.search(text), ARTEFACTS.search(text)
    assert all(len(line) <= 80 for line in text.splitlines()), [ln for ln in text.splitlines() if len(ln) > 80]
    head, _, tail = text.rpartition("Examples:\n")
    assert head, text
    examples = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    assert 2 <= len(examples) <= 4 and examples == EXAMPLES[command], text
    assert all(e.startswith(f"fer-batch {command}".rstrip()) for e in examples)


@pytest.mark.parametrize("example", [e for lines in EXAMPLES.values() for e in lines])
def test_every_example_parses_as_its_command(example: str) -> None:
    """Options and arguments as the command declares them (nothing runs): an example that names an option that
    does not exist, or misses a required one, fails here."""
    words = shlex.split(example)
    words = words[: next((i for i, w in enumerate(words) if w == "|" or w.startswith("2>")), len(words))]
    assert words[0] == "fer-batch"
    group = typer.main.get_command(app)
    command = group.commands[words[1]]  # type: ignore[attr-defined]
    if "--help" in words:
        return
    command.make_context(words[1], words[2:])
