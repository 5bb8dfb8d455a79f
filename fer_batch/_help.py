"""What ``fer-batch … --help`` shows: real examples at the end of every command's help, and no typer artefacts.

Why: typer 0.29 writes a required argument as ``{paths}`` in the usage line and a type label after every name
(``--help <bool>``, ``paths... <list[str]>``), and its rich panels wrap badly at 80 columns. The CLI uses click's
plain layout (``rich_markup_mode=None``), a metavar on every option that takes a value, and ``HelpCommand`` for the
usage line and the argument rows. Each example is parsed by the tests against the command it documents.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

EXAMPLES: dict[str, list[str]] = {
    "": [
        "fer-batch analyze samples/astronaut.mp4 --out runs/sample",
        "fer-batch report runs/sample",
        "fer-batch analyze --help",
    ],
    "analyze": [
        "fer-batch analyze samples/astronaut.mp4 --out runs/sample",
        "fer-batch analyze ~/recordings --out runs/study1 --fps 5 --jobs 2",
        "fer-batch analyze interview.mp4 --out runs/one --annotate --report",
        "fer-batch analyze 'day*/*.mp4' --out runs/days 2>run.log | tee summary.txt",
    ],
    "render": [
        "fer-batch render interview.mp4 runs/one/interview.parquet -o a.mp4",
        "fer-batch render talk.mp4 runs/one/talk.parquet -o small.mp4 --scale 0.5",
    ],
    "webcam": [
        "fer-batch webcam --camera 0 --seconds 60 --out runs/live --annotate",
        "fer-batch webcam --camera interview.mp4 --out runs/replay --no-preview",
    ],
    "summary": ["fer-batch summary runs/sample", "fer-batch summary runs/study1 --no-plots"],
    "report": ["fer-batch report runs/sample", "fer-batch report runs/study1 --thumbnails 0"],
    "models": ["fer-batch models", "fer-batch models | grep -v 'sha256 ok'"],
    "export": [
        "fer-batch export runs/sample -o sample.csv",
        "fer-batch export runs/study1 -o per_second.tsv --by second --bin 0.5",
        "fer-batch export runs/sample -o per_event.csv --by event --events samples/astronaut_events.tsv",
    ],
}


def epilog(command: str) -> str:
    """The examples of ``command`` ("" for the group) as an epilog click prints as written (``\\b``: no rewrap)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


class HelpCommand(TyperCommand):
    """A typer command whose usage line and argument rows name arguments by their metavar (``PATH...``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_name(param) if param.required else f"[{_name(param)}]")
            else:
                pieces += param.get_usage_pieces(ctx)
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:  # typer's own copy of click: its types, not click's
        args, opts = [], []
        for param in self.get_params(ctx):
            record: Any = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((_name(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _name(param: Any) -> str:
    return param.metavar or (param.name or "").upper()
