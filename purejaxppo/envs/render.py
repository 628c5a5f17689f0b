"""Drawing an episode to a GIF.

The classic-control envs (CartPole, Pendulum, Acrobot, MountainCar and
MountainCarContinuous) are drawn here directly from their gymnax env states
with Pillow's `ImageDraw` — gymnax's own visualizer draws them through
gymnasium + pygame, which are not dependencies. The other envs gymnax's
`Visualizer` can draw (Catch, the MinAtar games, PointRobot, MetaMaze,
FourRooms) go through it (matplotlib; MinAtar also needs seaborn). Any other
env raises `EnvError` with the list of drawable ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.errors import EnvError

OWN_DRAWERS = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0")
GYMNAX_VISUALIZER = (
    "Catch-bsuite",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Pong-misc",
    "PointRobot-misc",
    "MetaMaze-misc",
    "FourRooms-misc",
)
RENDERABLE = OWN_DRAWERS + GYMNAX_VISUALIZER

W, H = 480, 320
BG, FG, ACCENT, GOAL = (255, 255, 255), (40, 40, 40), (204, 102, 51), (60, 150, 60)


def check_renderable(env_name: str) -> None:
    if env_name not in RENDERABLE:
        raise EnvError(
            f"render: environment {env_name!r} cannot be drawn; drawable environments: {', '.join(RENDERABLE)}"
        )


def _f(state, name: str) -> float:
    return float(np.asarray(getattr(state, name)))


def _draw_cartpole(d, s, p):
    world = 2.0 * float(p.x_threshold) * 1.2
    scale = W / world
    ground = int(H * 0.7)
    d.line([(0, ground), (W, ground)], fill=FG, width=1)
    cx = W / 2 + _f(s, "x") * scale
    d.rectangle([cx - 25, ground - 15, cx + 25, ground + 15], fill=FG)
    length = 2.0 * float(p.length) * scale
    th = _f(s, "theta")
    d.line([(cx, ground - 5), (cx + length * math.sin(th), ground - 5 - length * math.cos(th))], fill=ACCENT, width=8)
    d.ellipse([cx - 4, ground - 9, cx + 4, ground - 1], fill=(120, 120, 200))


def _draw_pendulum(d, s, p):
    cx, cy, r = W / 2, H / 2 + 10, min(W, H) * 0.35
    th = _f(s, "theta")  # 0 = upright
    d.line([(cx, cy), (cx - r * math.sin(th), cy - r * math.cos(th))], fill=ACCENT, width=10)
    d.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill=FG)


def _draw_acrobot(d, s, p):
    l1, l2 = float(p.link_length_1), float(p.link_length_2)
    scale = min(W, H) / (2.2 * (l1 + l2))
    cx, cy = W / 2, H / 2 + 10
    t1, t2 = _f(s, "joint_angle1"), _f(s, "joint_angle2")
    x1, y1 = l1 * math.sin(t1), -l1 * math.cos(t1)
    x2, y2 = x1 + l2 * math.sin(t1 + t2), y1 - l2 * math.cos(t1 + t2)
    goal = cy - 1.0 * scale
    d.line([(0, goal), (W, goal)], fill=GOAL, width=1)
    pts = [(cx, cy), (cx + x1 * scale, cy - y1 * scale), (cx + x2 * scale, cy - y2 * scale)]
    d.line(pts[:2], fill=(0, 130, 130), width=8)
    d.line(pts[1:], fill=(0, 130, 130), width=8)
    for x, y in pts[:2]:
        d.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(200, 200, 0))


def _draw_mountain_car(d, s, p):
    lo, hi = float(p.min_position), float(p.max_position)
    scale = W / (hi - lo)
    height = lambda x: math.sin(3 * x) * 0.45 + 0.55  # noqa: E731
    to_px = lambda x: ((x - lo) * scale, H - 20 - height(x) * scale)  # noqa: E731
    xs = np.linspace(lo, hi, 100)
    d.line([to_px(x) for x in xs], fill=FG, width=2)
    gx, gy = to_px(float(p.goal_position))
    d.line([(gx, gy), (gx, gy - 40)], fill=FG, width=2)
    d.polygon([(gx, gy - 40), (gx + 20, gy - 34), (gx, gy - 28)], fill=GOAL)
    x, y = to_px(_f(s, "position"))
    d.ellipse([x - 10, y - 20, x + 10, y], fill=ACCENT)


_DRAWERS = {
    "CartPole-v1": _draw_cartpole,
    "Pendulum-v1": _draw_pendulum,
    "Acrobot-v1": _draw_acrobot,
    "MountainCar-v0": _draw_mountain_car,
    "MountainCarContinuous-v0": _draw_mountain_car,
}


def draw_frames(env_name: str, env_params: Any, states: Sequence[Any], returns: Sequence[float] | np.ndarray) -> list:
    """Pillow images, one per env state (classic-control envs)."""
    from PIL import Image, ImageDraw

    drawer = _DRAWERS[env_name]
    frames = []
    for t, (s, ret) in enumerate(zip(states, returns, strict=True)):
        img = Image.new("RGB", (W, H), BG)
        d = ImageDraw.Draw(img)
        drawer(d, s, env_params)
        d.text((8, 8), f"{env_name}  step {t + 1}  return {ret:.1f}", fill=FG)
        frames.append(img)
    return frames


def write_gif(frames: list, path: str | Path, fps: int = 25) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def render_states(
    env: Any,
    env_params: Any,
    env_name: str,
    states: Sequence[Any],
    returns: Sequence[float] | np.ndarray,
    path: str | Path,
) -> Path:
    """Write a GIF of `states` (one env state per frame; `returns` the running return shown)."""
    check_renderable(env_name)
    if not states:
        raise EnvError("render: the episode has no steps")
    if env_name in _DRAWERS:
        return write_gif(draw_frames(env_name, env_params, states, returns), path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from gymnax.visualize import Visualizer
    except ImportError as e:
        raise EnvError(
            f"render: drawing {env_name} uses gymnax's visualizer, which needs {e.name}: pip install {e.name}"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Visualizer(env, env_params, list(states), np.asarray(returns)).animate(str(path))
    return path
