"""Copied beside each Python-backend model by `zoo triton`: puts the zoo's environment (listed in
zoo_site.json by the machine that wrote the repository) on the path of Triton's Python interpreter,
which the bundled server starts without site-packages. Paths that do not exist here are skipped, so
the same repository works in a container where the zoo is installed normally."""

import json
import site
from pathlib import Path

for _path in json.loads(Path(__file__).with_name("zoo_site.json").read_text())["paths"]:
    if Path(_path).is_dir():
        site.addsitedir(_path)
