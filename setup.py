"""Build of calibkit's compiled kernels (C through Cython); everything else is declared in
pyproject.toml."""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

# no fused multiply-add: the kernels round as pycocotools' C code and numpy do
FLAGS = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off"]
if os.environ.get("CALIBKIT_DEBUG_BUILD"):
    FLAGS = ["-O0", "-g"]

EXTENSIONS = [
    Extension("calibkit.detection._ckernels", ["detection/_ckernels.pyx"],
              extra_compile_args=FLAGS),
    Extension("calibkit._venn_abers_hull", ["calibkit/_venn_abers_hull.pyx"],
              extra_compile_args=FLAGS),
]

setup(ext_modules=cythonize(EXTENSIONS, compiler_directives={"language_level": 3}))
