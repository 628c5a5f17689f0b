"""Every Python example in README.md and docs/*.md runs as written (with the training budget shrunk), except
blocks whose first line says `# (fragment: ...)` (they need a run folder or devices). The docs site itself is
built with `mkdocs build --strict` by .ci/run."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks():
    out = []
    for page in PAGES:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            if not code.startswith("# (fragment"):
                out.append(pytest.param(code, id=f"{page.relative_to(ROOT)}[{i}]"))
    return out


def test_every_page_has_its_examples_found():
    assert len(_blocks()) >= 6  # README 1, getting started 1, concepts 3, recurrent 1


@pytest.mark.parametrize("code", _blocks())
def test_python_block_runs(code):
    code = re.sub(r"total_timesteps=500_000", "total_timesteps=1024", code)
    code = code.replace("PPOConfig(objective", "PPOConfig(total_timesteps=1024, objective")
    code = code.replace('PPOConfig(env="CartPole-v1", total_timesteps=500_000)', "PPOConfig(total_timesteps=1024)")
    assert "500_000" not in code
    exec(compile(code, "docs block", "exec"), {})


def test_generated_references_cover_every_field_and_suite():
    """The docs' configuration reference and environment table come from the code (docs/hooks.py)."""
    import dataclasses
    import importlib.util

    pytest.importorskip("mkdocs")
    from purejaxppo.core.config import PPOConfig
    from purejaxppo.envs import SUITES

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    table = hooks.config_reference()
    for f in dataclasses.fields(PPOConfig):
        assert f"| `{f.name}` |" in table
    assert table.count("| traced |") == sum(bool(f.metadata["traced"]) for f in dataclasses.fields(PPOConfig))
    suites = hooks.env_suites().splitlines()[2:]
    assert len(suites) == len(SUITES) and all(r.count(" | ") == 7 for r in suites)
