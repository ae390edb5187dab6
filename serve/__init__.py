"""Running artifacts: the runtimes, prediction, parity, the verdict policy, benchmarks, the web demo and
Triton. Installed as `zoo.serve`. The product's Python API is `zoo.api`, one function per command."""
