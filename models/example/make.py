"""Regenerate models/example/recurrent.rsnn and data.npz (deterministic, a second on a CPU).

    python models/example/make.py
"""

from pathlib import Path

import numpy as np

from rsnn_compiler.examples import example_inputs, recurrent_example
from rsnn_compiler.ir.serialize import save_graph

here = Path(__file__).resolve().parent
save_graph(recurrent_example(), here / "recurrent.rsnn")
np.savez(here / "data.npz", x=example_inputs())
print(f"wrote {here / 'recurrent.rsnn'} and {here / 'data.npz'}")
