"""Pretrained weights of the zoo: `manifest.toml` and the small safetensors files it lists."""
