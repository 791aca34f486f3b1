"""`python -m index_builder`: see index_builder/cli.py."""

import sys

from shared.cpu import choose_blas_kernels

# Before dlib can load (here or in the engines' worker processes, which inherit the
# variable): see shared/cpu.py.
choose_blas_kernels()

from index_builder.cli import main  # noqa: E402  (after the kernels are named)

sys.exit(main())
