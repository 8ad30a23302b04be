"""rsnnc: a compiler for trained spiking neural networks with bit-exact integer backends."""

__version__ = "0.1.0"
