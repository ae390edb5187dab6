"""Triton Python-backend model: the zoo's classifier step (serve/triton_backend.py), written by `zoo triton`."""

import zoo_site  # noqa: F401  (the zoo's environment first)

from zoo.serve.triton_backend import Classifier as TritonPythonModel  # noqa: F401
