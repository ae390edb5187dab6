"""Data: the datasets the zoo knows and their readers (datasets.py, datasets.toml), the preprocessing contract, the training loaders, label sets, and the CIFAR-10 download."""
