"""Ready-made requirements: an installed package at a minimum version, a CUDA GPU."""

from __future__ import annotations

from graft.techniques.technique import Requirement


def package(name: str, minimum: str | None = None) -> Requirement:
    def check() -> bool:
        from importlib.metadata import PackageNotFoundError, version

        from packaging.version import Version

        try:
            installed = version(name)
        except PackageNotFoundError:
            return False
        return minimum is None or Version(installed) >= Version(minimum)

    return Requirement(f"{name}>={minimum}" if minimum else name, check)


def cuda() -> Requirement:
    def check() -> bool:
        import torch

        return torch.cuda.is_available()

    return Requirement("a CUDA GPU", check)
