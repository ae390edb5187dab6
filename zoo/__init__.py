"""resnet-zoo: the ResNets of He et al. 2015 with pretrained tags, one preprocessing contract, and a CLI.

>>> import zoo
>>> zoo.list_models("resnet*", pretrained=True)
>>> model = zoo.create_model("resnet50.tv2_in1k", pretrained=True)
>>> from zoo import api   # one function per command: api.export, api.parity, api.predict, api.bench ...

The package: models/ (networks, registry, weights), data/ (datasets, preprocessing, labels), train/
(trainer, recipes, distillation, runs), paper/ (the paper's experiments), export/ (ONNX, INT8, TensorRT),
serve/ (runtimes, parity, verdicts, bench, demo, Triton), cli/ (the `zoo` command), utils/.
"""

from typing import Any

from zoo.errors import ZooError

__all__ = ["ZooError", "api", "create_model", "list_models"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:  # lazy, so that `zoo --help` imports neither numpy nor torch
    if name in ("create_model", "list_models"):
        from zoo.models import registry

        return getattr(registry, name)
    if name == "api":
        import zoo.api

        return zoo.api
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
