"""Stand-in for PyTorch inside simulated ML-node containers: only what a CUDA check touches.

``torch.cuda.is_available()`` follows the sandbox knob ``no_gpu`` (/etc/gonka-sim/knobs.json).
"""

from . import cuda, version

__version__ = "2.6.0+cu124"
__all__ = ["cuda", "version", "__version__"]
