"""mkdocs hooks: what the docs generate from the code instead of repeating it by hand.

* `<!-- generated: config-reference -->`: the table of every `PPOConfig` field (type, default, static or traced,
  the allowed values from its declared constraint, and its own documentation string from
  `purejaxppo/core/config.py`).
* `<!-- generated: env-suites -->`: one row per environment suite of the env registry
  (`purejaxppo.envs.SUITES`), from the `SUITE` entry of the module that implements it (read without importing
  the module, so the optional env libraries need not be installed to build the docs).
* `benchmarks/results/` becomes the site's `results/` section, so measurements are kept in one place.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import pathlib
import typing

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def config_reference() -> str:
    from purejaxppo.core.config import PPOConfig
    from purejaxppo.core.config_fields import describe_constraint

    hints = typing.get_type_hints(PPOConfig)
    rows = ["| field | type | default | kind | allowed | meaning |", "|---|---|---|---|---|---|"]
    for f in dataclasses.fields(PPOConfig):
        kind = "traced" if f.metadata.get("traced") else "static"
        hint = getattr(hints[f.name], "__name__", None) or str(hints[f.name]).replace("typing.", "")
        allowed = describe_constraint(hints[f.name], f.metadata)
        rows.append(
            f"| `{f.name}` | `{_cell(hint)}` | `{f.default!r}` | {kind} | {_cell(allowed)} | {_cell(f.metadata['doc'])} |"
        )
    return "\n".join(rows)


def _suite_row(module: str) -> dict:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    tree = ast.parse(pathlib.Path(spec.origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SUITE" for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "SUITE" and node.value:
            return ast.literal_eval(node.value)
    raise ValueError(f"{module} has no SUITE entry for the docs' environment table")


def env_suites() -> str:
    from purejaxppo.envs import SUITES

    rows = [
        "| suite | name syntax (examples) | extra | actions | observations | masks | tested here | CPU note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for prefix, (module, extra) in SUITES.items():
        s = _suite_row(module)
        cells = [s["suite"], s["names"], f"`{extra}`" if extra else "—", s["actions"], s["observations"], s["masks"],
                 s["tested"], s["notes"]]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


GENERATED = {"<!-- generated: config-reference -->": config_reference, "<!-- generated: env-suites -->": env_suites}


def on_page_markdown(markdown: str, page, config, files) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


def on_files(files, config):
    for path in sorted(RESULTS.iterdir()):
        if path.suffix in (".md", ".png"):
            files.append(File.generated(config, f"results/{path.name}", abs_src_path=str(path)))
    return files
