"""Rewrite build-machine paths in the ROS wheels' exported CMake files (environment.md)."""

import pathlib
import sys
import sysconfig

import numpy

venv = pathlib.Path(sys.argv[1])
replacements = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
changed = 0
for path in (venv / "share").rglob("*.cmake"):
    text = path.read_text(errors="surrogateescape")
    new = text
    for old, repl in replacements.items():
        new = new.replace(old, repl)
    if new != text:
        path.write_text(new, errors="surrogateescape")
        changed += 1
print(f"[setup] fixed paths in {changed} CMake files")
