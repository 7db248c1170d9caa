"""Where tensors live: device choice and device-local random generators.

The spec (shared with the Brian2 circuits) says nothing about devices; every torch model
takes a ``device`` instead. Parameters are drawn on that device from a generator that lives
there, so a seed gives the same weights on every run on one device (CPU draws are the ones
every earlier result used; CUDA draws differ from CPU draws, as CUDA's generator does).
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["DeviceLike", "DeviceChoice", "generator_on", "randn_on", "resolve_device"]

DeviceLike = torch.device | str
DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(device: DeviceLike | None = "auto") -> torch.device:
    """``"auto"`` (or ``None``) is CUDA when available, else the CPU; anything else is
    checked: asking for CUDA on a machine without it raises ``ValueError`` rather than
    quietly running on the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device: {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA was asked for but torch.cuda.is_available() is False "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    return dev


def generator_on(device: DeviceLike | None, seed: int) -> torch.Generator | None:
    """A generator on ``device`` seeded with ``seed``; ``None`` on the meta device (which
    draws nothing)."""
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "meta":
        return None
    return torch.Generator(device=dev).manual_seed(seed)


def randn_on(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None,
             device: DeviceLike | None, dtype: torch.dtype) -> torch.Tensor:
    """``N(0, 1)`` draws of ``shape`` as ``dtype`` on ``device``. Drawn in float64 on the
    generator's own device, so a CPU generator gives the same numbers for every dtype and
    target device (then moved), and a device-local generator never leaves its device."""
    dev = torch.device("cpu" if device is None else device)
    src = dev if generator is None else generator.device
    draw = torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device=src)
    return draw.to(device=dev, dtype=dtype)
