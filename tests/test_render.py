"""`purejaxppo.envs.render` without training: frames of classic-control states, a GIF on disk, clear refusals.
(The CLI's `render` of a trained run is tested in tests/test_cli.py and tests/test_recurrent.py.)"""

import subprocess
import sys

import jax
import pytest

from purejaxppo.envs import render
from purejaxppo.envs import make_env

pytest.importorskip("PIL")


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0"])
def test_states_of_an_episode_become_a_gif(tmp_path, name):
    env, params = make_env(name)
    key = jax.random.key(0)
    _, state = env.reset(key, params)
    states, returns = [state], [0.0]
    for t in range(3):
        key, k_act, k_step = jax.random.split(key, 3)
        action = env.action_space(params).sample(k_act)
        _, state, reward, *_ = env.step(k_step, state, action, params)
        states.append(state)
        returns.append(returns[-1] + float(reward.reshape(-1)[0]))
    frames = render.draw_frames(name, params, states, returns)
    assert len(frames) == 4 and frames[0].size == frames[-1].size
    assert frames[0].tobytes() != frames[-1].tobytes() or name == "MountainCar-v0"  # the scene moves
    path = render.render_states(env, params, name, states, returns, tmp_path / "ep.gif")
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 4


def test_an_empty_episode_is_refused(tmp_path):
    env, params = make_env("CartPole-v1")
    with pytest.raises(ValueError, match="no steps"):
        render.render_states(env, params, "CartPole-v1", [], [], tmp_path / "x.gif")


def test_python_dash_m_purejaxppo_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "purejaxppo", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "sweep" in out.stdout
