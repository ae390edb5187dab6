"""Running artifacts: one runtime interface, prediction, parity and benchmarks."""
