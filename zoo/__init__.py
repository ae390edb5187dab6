"""resnet-zoo: the ResNets of He et al. 2015 with pretrained tags, one preprocessing contract, and a CLI.

>>> import zoo
>>> zoo.list_models("resnet*", pretrained=True)
>>> model = zoo.create_model("resnet50.tv2_in1k", pretrained=True)
"""

from typing import Any

from zoo.errors import ZooError

__all__ = ["ZooError", "create_model", "list_models"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # lazy, so that `zoo --help` imports neither numpy nor torch
    if name in ("create_model", "list_models"):
        from zoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
