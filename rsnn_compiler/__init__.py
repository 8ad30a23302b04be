"""rsnnc: a compiler for trained spiking neural networks with bit-exact integer backends."""

from rsnn_compiler.float_repro import request_strict_blas

request_strict_blas()  # before anything here runs a torch product (float_repro.py says why)

__version__ = "0.1.0"
