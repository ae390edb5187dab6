"""Triton Python-backend model: the zoo's preprocess step (serve/triton_backend.py), written by `zoo triton`."""

import zoo_site  # noqa: F401  (the zoo's environment first)

from zoo.serve.triton_backend import Preprocess as TritonPythonModel  # noqa: F401
