"""torch.cuda of the stand-in: GPUs as the sandbox knobs describe them."""

from __future__ import annotations

import json
import os
import warnings


def _knobs() -> dict:
    root = os.environ.get("GONKA_SIM_ROOT") or "/"
    try:
        with open(os.path.join(root, "etc/gonka-sim/knobs.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_available() -> bool:
    if _knobs().get("no_gpu"):
        warnings.warn("CUDA initialization: Found no NVIDIA driver on your system. Please check that you have an "
                      "NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx "
                      "(Triggered internally at ../c10/cuda/CUDAFunctions.cpp:108.)", UserWarning, stacklevel=2)
        return False
    return True


def device_count() -> int:
    k = _knobs()
    return 0 if k.get("no_gpu") else int(k.get("gpu_count", 1))


def current_device() -> int:
    if not is_available():
        raise RuntimeError("Found no NVIDIA driver on your system.")
    return 0


def get_device_name(device: int = 0) -> str:
    if device >= device_count():
        raise RuntimeError("CUDA error: invalid device ordinal")
    return str(_knobs().get("gpu_name", "NVIDIA H100 80GB HBM3"))


def is_initialized() -> bool:
    return is_available()
