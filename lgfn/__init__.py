"""lgfn: temperature-conditional GFlowNets with learned logit scaling (Logit-GFN) on PyTorch Lightning.

The public API: :class:`GFlowNet` (the LightningModule), the decorators that register components
(:func:`register`, :func:`register_task`, :func:`register_oracle`) and :func:`load_components`, which fills
the registry with the built-in components, the YAML registry and installed plugins. ``import lgfn`` stays
light: torch and Lightning are imported when ``GFlowNet`` is first used.
"""

from __future__ import annotations

from typing import Any

from lgfn.registry import register, register_oracle, register_task

__version__ = "0.2.0"
__all__ = ["GFlowNet", "__version__", "load_components", "register", "register_oracle", "register_task"]


def load_components() -> None:
    """Register the built-in components, the YAML registry entries and installed plugins (once)."""
    from lgfn.components import load

    load()


def __getattr__(name: str) -> Any:
    if name == "GFlowNet":
        from lgfn.gflownet import GFlowNet

        return GFlowNet
    raise AttributeError(f"module 'lgfn' has no attribute {name!r}")
