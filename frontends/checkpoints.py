"""Models and weights as users save them: factories, model files, training checkpoints.

- ``pkg.module:factory`` or ``path/to/model.py:factory``; ``factory_args`` (a JSON object) are
  passed as keyword arguments.
- Weights (``--weights``) are read with ``torch.load(weights_only=True)`` and unwrapped:
  a plain ``state_dict``; a training checkpoint holding it under one of ``STATE_KEYS``
  (``{"model_state_dict": ..., "optimizer_state_dict": ..., "epoch": ...}``); or a dict with
  exactly one nested state_dict. Several candidates are refused naming them.
- Prefixes every key shares (``module.`` from DataParallel/DistributedDataParallel,
  ``_orig_mod.`` from torch.compile) are removed, and the report says so.
- Keys must match the model exactly: otherwise one line lists the missing and unexpected keys.
- Without weights a factory is refused unless ``initial_weights`` is set; then the factory runs
  under ``torch.manual_seed(INITIAL_SEED)`` so the build is deterministic, and the report says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import torch
from torch import nn

from rsnn_compiler.errors import UserInputError
from rsnn_compiler.user_code import guard

STATE_KEYS = ("model_state_dict", "state_dict", "model_state", "model", "net", "network", "weights",
              "params")
PREFIXES = ("module.", "_orig_mod.")
INITIAL_SEED = 0
_LIST_KEYS = 4  # keys named in a mismatch message, per kind


def _import_file(path: str):
    if not os.path.isfile(path):
        raise UserInputError(f"model file '{path}' does not exist; check the path before ':'")
    name = "rsnnc_user_model_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserInputError(f"cannot load '{path}' as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # the model file may import its neighbours
    try:
        sys.modules[name] = module
        with guard(f"model file '{path}'"):  # sys.exit / os._exit / BaseException at import
            spec.loader.exec_module(module)
    except UserInputError:
        sys.modules.pop(name, None)
        raise
    except Exception as err:
        sys.modules.pop(name, None)
        raise UserInputError(f"cannot import '{path}' ({type(err).__name__}: {str(err)[:120]})") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def resolve_factory(source: str):
    """The callable named by ``pkg.module:factory`` or ``path/to/file.py:factory``."""
    mod_name, _, attr = source.rpartition(":")
    if not mod_name or not attr:
        raise UserInputError(f"'{source}' is not of the form pkg.module:factory or path/to/model.py:factory")
    if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
        mod = _import_file(mod_name)
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            with guard(f"module '{mod_name}'"):
                mod = importlib.import_module(mod_name)
        except UserInputError:
            raise
        except Exception as err:
            raise UserInputError(
                f"cannot import module '{mod_name}' ({type(err).__name__}: {str(err)[:120]});"
                " check PYTHONPATH, or give the file as path/to/model.py:factory"
            ) from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise UserInputError(f"'{mod_name}' has no callable '{attr}'; name a function or class that builds the model")
    return factory


def build_model(source: str, factory_args: dict, weights: str | None, initial_weights: bool,
                notes: list[str]) -> nn.Module:
    """Call the factory and load the weights (module docstring); notes go to the import report."""
    factory = resolve_factory(source)
    if weights is None and not initial_weights:
        raise UserInputError(
            f"{source} has no --weights: the factory alone gives untrained initial weights;"
            " pass --weights CHECKPOINT, or --initial-weights to compile the initial weights on purpose"
        )
    if weights is not None and initial_weights:
        raise UserInputError("--initial-weights and --weights exclude each other; give one")
    state = None if weights is None else read_state_dict(weights, notes)  # read before running user code
    try:
        with torch.random.fork_rng(devices=[]), guard(f"model factory {source}()"):
            torch.manual_seed(INITIAL_SEED)
            model = factory(**factory_args)
    except UserInputError:
        raise
    except TypeError as err:
        raise UserInputError(
            f"{source}({_show(factory_args)}) failed ({str(err)[:120]}); check --factory-args"
        ) from None
    except Exception as err:
        raise UserInputError(f"{source}({_show(factory_args)}) failed ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(model, nn.Module):
        raise UserInputError(f"{source}() returned {type(model).__name__}, not a torch.nn.Module")
    if factory_args:
        notes.append(f"factory arguments: {_show(factory_args)}")
    if state is None:
        notes.append(
            f"WARNING: initial (untrained) weights, as asked with --initial-weights; the factory ran under"
            f" torch.manual_seed({INITIAL_SEED}), so the build is deterministic"
        )
    else:
        load_into(model, state, weights)
    return model


def _show(args: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def read_state_dict(path: str, notes: list[str]) -> dict[str, torch.Tensor]:
    """The model's state_dict inside ``path`` (a plain state_dict or a training checkpoint)."""
    if not os.path.exists(path):
        raise UserInputError(f"weights file '{path}' does not exist; check --weights")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserInputError(
            f"cannot read weights '{path}' with weights_only=True ({type(err).__name__}: {first});"
            " save tensors only: torch.save(model.state_dict(), path) or a dict of such state_dicts"
        ) from None
    if _is_state_dict(obj):
        state = obj
    elif isinstance(obj, dict):
        state = _nested_state(path, obj, notes)
    else:
        raise UserInputError(
            f"weights '{path}' hold a {type(obj).__name__}, not a state_dict; save torch.save(model.state_dict(), path)"
        )
    return _strip_prefixes(state, notes)


def _nested_state(path: str, obj: dict, notes: list[str]) -> dict[str, torch.Tensor]:
    known = [k for k in STATE_KEYS if _is_state_dict(obj.get(k))]
    if len(known) == 1:
        notes.append(f"weights: the state_dict under '{known[0]}' of the checkpoint '{os.path.basename(path)}'"
                     f" (other entries ignored: {', '.join(sorted(str(k) for k in obj if k != known[0]))[:120] or 'none'})")
        return obj[known[0]]
    candidates = known or [str(k) for k, v in obj.items() if _is_state_dict(v)]
    if len(candidates) == 1:
        notes.append(f"weights: the only state_dict in the checkpoint, under '{candidates[0]}'")
        return obj[candidates[0]]
    if not candidates:
        raise UserInputError(
            f"weights '{path}' hold a dict ({', '.join(sorted(map(str, obj)))[:120]}) with no state_dict in it;"
            " save torch.save(model.state_dict(), path)"
        )
    raise UserInputError(
        f"weights '{path}' hold several state_dicts ({', '.join(candidates)}); the file does not say which is the"
        f" model: save the one you mean alone, e.g. torch.save(ckpt['{candidates[0]}'], 'weights.pt')"
    )


def _strip_prefixes(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                notes.append(f"weights: removed the prefix '{prefix}' shared by every key"
                             " (a DataParallel / torch.compile wrapper)")
                changed = True
    return state


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """``load_state_dict`` with every key matching; else one line naming missing/unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:_LIST_KEYS])}{' ...' if len(missing) > _LIST_KEYS else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:_LIST_KEYS])}"
                         f"{' ...' if len(unexpected) > _LIST_KEYS else ''}")
        raise UserInputError(
            f"weights '{path}' do not match the model's keys ({'; '.join(parts)}); build the trained"
            " architecture (check --factory-args) or save its state_dict"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise UserInputError(
            f"weights '{path}': '{k}' has shape {tuple(state[k].shape)} but the model's is {tuple(own[k].shape)}"
            f" ({len(bad)} key(s) differ in shape); check --factory-args"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserInputError(f"weights '{path}' do not fit the model: {' '.join(str(err).split())[:200]}") from None
