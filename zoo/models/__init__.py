"""The networks (resnet.py, described as data in archs.toml), the registry of names and tags, pretrained weights and their manifests, checkpoint imports, and multiply-add counts."""
