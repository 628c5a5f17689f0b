"""The README's Python examples run as written (with the budget shrunk)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    text = README.read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "make_train" in b]


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_python_block_runs(index):
    code = _blocks()[index]
    code = re.sub(r"total_timesteps=500_000", "total_timesteps=1024", code)
    code = code.replace('PPOConfig(objective', 'PPOConfig(total_timesteps=1024, objective')
    code = code.replace('PPOConfig(env="CartPole-v1", total_timesteps=500_000)', 'PPOConfig(total_timesteps=1024)')
    assert "500_000" not in code
    namespace = {}
    exec(compile(code, f"README block {index}", "exec"), namespace)
