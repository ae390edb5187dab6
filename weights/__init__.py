"""The zoo's built-in pretrained weights, installed as the package data of `zoo.weights`:
`manifest.toml`, the small safetensors files it lists, and their training logs and benchmark reports."""
