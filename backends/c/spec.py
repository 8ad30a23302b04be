"""Target constants of the C backend (one typed spec, docs/design.md §6): limits ``check`` enforces and
the compiler flags the build uses. No other C module hard-codes these numbers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CSpec:
    """Limits of the generated C99 code (docs/c-backend.md, "Limits")."""

    name: str = "c"
    # widest state / accumulator / message the int64_t code keeps exact with headroom for the
    # products and sums of one update (decay multiplies by up to 2^12)
    max_value_bits: int = 48
    # largest edge delay or Delay op length: ring buffers hold max_delay + 1 slots per node
    max_delay: int = 1024
    # every exact intermediate of an update must stay inside int64_t
    int64_limit: int = (1 << 63) - 1
    # rsnn_step takes int32_t inputs: the widest integer input a sample may carry
    input_bits: int = 32
    # shifts by a constant (weight_exp, bias_exp, input/vth shift): |n| <= this
    max_shift: int = 62
    # the harness keeps this many bytes of per-sample state in static storage; RSNN_MAX_BATCH
    # (samples per harness run) is chosen so max_batch * sizeof(state) fits
    harness_state_bytes: int = 64 << 20
    max_batch: int = 256
    # largest per-sample state the generated code accepts (fixed-size static arrays)
    max_state_bytes: int = 256 << 20
    # weight storage (docs/c-backend.md "Weight storage"): a FixedDense whose weight density
    # (nonzeros / size) is below this keeps only its nonzeros, compressed by input (CSC), and its
    # event loop visits only them -- provided the CSC arrays take fewer bytes than the dense
    # matrix; otherwise the layer stays dense. Measured time crossover for graded / multi-bit
    # inputs (gcc -O2, x86-64): 0.8-0.9; the byte rule (0.33-0.5 for int8) binds first.
    # A value above 1 forces CSC everywhere (tests), 0 keeps every layer dense.
    sparse_max_density: float = 0.5
    # ... for a FixedDense whose only input is a 0/1 spike train: the dense loop only adds and
    # vectorises (int32 accumulators), measured crossover ~0.2; 0.25 trades <= 10 % of that
    # layer's time for 40+ % less weight memory
    sparse_max_density_spikes: float = 0.25
    # the same for FixedConv1d/2d (tap lists per input channel); measured crossover 0.3-0.5 (1-D)
    # and 0.5-0.8 (2-D), and the byte rule usually binds first (2-3 index bytes per tap)
    sparse_conv_max_density: float = 0.4
    # a FixedDense with at most this many outputs whose accumulator provably stays inside int32
    # (bound propagation of c_check) sums in an int32_t stack array: twice the SIMD lanes of
    # int64 (1.7x on the rleaky_mnist1d model), same integers
    acc32_max_outputs: int = 4096
    # arrays of at least this many values go to weights.bin as binary data instead of C
    # initialisers (backends/c/blob.py): gcc parses ~3 us per literal; 0 puts every array there
    blob_min_values: int = 4096
    # compiler invocation: $CC (default cc) with these flags
    cc_default: str = "cc"
    cflags: tuple[str, ...] = ("-std=c99", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror", "-pedantic")
    binary: str = "rsnn_run"


C_SPEC = CSpec()
