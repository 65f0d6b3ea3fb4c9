"""Resolving what a `lmprog` command line names: programs (`module:attribute`), metrics, data files, LMs and
`key=value` options. Every mistake becomes a UsageError whose one-line message says what to fix."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError

# Built-in metric names; each is built on first use (no import at start-up).
METRIC_NAMES = ("exact_match", "f1", "contains", "numeric", "judge")


def load_program(spec: str) -> Any:
    """The program named by `module:attribute`: a Module instance, subclass, or zero-argument factory."""
    from .module import Module

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"PROGRAM {spec!r} must be module:attribute, e.g. myprog:classify "
                         "(myprog.py in the current folder defines classify)")
    module = _import_module(module_name)
    try:
        value = getattr(module, attr)
    except AttributeError:
        found = sorted(n for n, v in vars(module).items() if _is_programlike(v) and not n.startswith("_"))
        hint = f"; programs it defines: {', '.join(found)}" if found else ""
        raise UsageError(f"module {module_name!r} has no attribute {attr!r}{hint}") from None
    if isinstance(value, type) and issubclass(value, Module):
        value = _call_for_program(value, f"{spec} is a Module class; instantiating {attr}()")
    elif callable(value) and not isinstance(value, Module):
        value = _call_for_program(value, f"{spec} is a function; calling {attr}()")
    if not isinstance(value, Module):
        raise UsageError(f"{spec} is a {type(value).__name__}, not an lmprog program; point PROGRAM at a Module "
                         "instance (e.g. lp.Predict(...)), a Module subclass or a function returning one")
    return value


def _is_programlike(value: Any) -> bool:
    from .module import Module

    return isinstance(value, Module) or (isinstance(value, type) and issubclass(value, Module)
                                         and value.__module__ not in ("lmprog.module", "lmprog.predict"))


def _import_module(name: str) -> Any:
    import importlib
    import importlib.util

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if name.endswith(".py") or os.sep in name or "/" in name:
            path = Path(name)
            if not path.is_file():
                raise UsageError(f"program file {name!r} does not exist; give module:attribute or file.py:attribute")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UsageError(f"cannot load {name!r} as a Python module; use a .py file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except UsageError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"cannot import {name!r}: no module named {exc.name!r}; run lmprog in the folder "
                             f"that holds {exc.name.split('.')[0]}.py or add that folder to PYTHONPATH") from None
        raise UsageError(f"importing {name!r} failed: it needs the module {exc.name!r}, which is not "
                         "installed") from None
    except SyntaxError as exc:
        raise UsageError(f"importing {name!r} failed: syntax error in {exc.filename}, line {exc.lineno}: "
                         f"{exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing: say where, in one line
        raise UsageError(f"importing {name!r} failed: {_where(exc)}{type(exc).__name__}: {exc}") from None


def _call_for_program(fn: Any, what: str) -> Any:
    try:
        return fn()
    except UsageError:
        raise
    except TypeError as exc:
        raise UsageError(f"{what} failed ({exc}); PROGRAM must need no arguments") from None
    except Exception as exc:  # noqa: BLE001 - the user's code raised: report it in one line
        raise UsageError(f"{what} failed: {_where(exc)}{type(exc).__name__}: {exc}") from None


def _where(exc: BaseException) -> str:
    """`file.py:line: ` of the innermost frame of the user's code, for one-line reports."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        if "lmprog" not in Path(tb.tb_frame.f_code.co_filename).parts:
            last = tb
        tb = tb.tb_next
    return f"{Path(last.tb_frame.f_code.co_filename).name}:{last.tb_lineno}: " if last else ""


def load_metric(name: str) -> Any:
    """A metric by built-in name (exact_match, f1, contains, numeric, judge) or `module:function`."""
    from . import metrics

    builtins: dict[str, Any] = {
        "exact_match": lambda: metrics.exact_match, "f1": lambda: metrics.f1, "contains": lambda: metrics.contains,
        "numeric": lambda: metrics.numeric(), "judge": lambda: metrics.Judge(),
    }
    if name in builtins:
        return builtins[name]()
    module_name, sep, attr = name.rpartition(":")
    if not sep:
        raise UsageError(f"unknown metric {name!r}; use one of {', '.join(METRIC_NAMES)}, or module:function "
                         "for your own metric(example, prediction, trace=None)")
    module = _import_module(module_name)
    fn = getattr(module, attr, None)
    if fn is None:
        raise UsageError(f"metric {name!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise UsageError(f"metric {name!r} is a {type(fn).__name__}; a metric is a function "
                         "metric(example, prediction, trace=None) -> bool | float")
    return fn


def parse_inputs(text: str | None) -> list[str] | None:
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise UsageError(f"--inputs {text!r} names no field; give the input fields as a comma list, e.g. "
                         "--inputs question,context")
    return keys


def load_data(path: str, inputs: list[str] | None, what: str = "--data") -> Any:
    from .dataset import Dataset

    if inputs is None:
        raise UsageError(f"{what} {path} needs --inputs: say which fields are inputs, e.g. --inputs review")
    data = Dataset.load(path, inputs)
    if not len(data):
        raise UsageError(f"{what} {path} holds no examples")
    return data


def use_lm(model: str | None) -> str:
    """Configure the LM the CLI asked for; returns the LM name in force (`--lm`, `LMPROG_LM` or the default)."""
    from .settings import DEFAULT_LM, configure

    if model:
        from .lm import LM

        configure(lm=LM(model))
        return model
    return os.environ.get("LMPROG_LM") or DEFAULT_LM


def lm_names(program: Any, default: str) -> str:
    own = sorted({p.lm.model for p in program.predictors() if getattr(p, "lm", None) is not None})
    if own and len(own) == len(program.predictors()):
        return ", ".join(own)
    return ", ".join(sorted(set(own) | {default}))


def load_state(program: Any, path: str | None) -> Any:
    if path is None:
        return program
    from .state import read_program_file

    return read_program_file(Path(path)).into(program)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{text!r} is not JSON; use key=value for text and key:=JSON for other values") from None


def parse_assignments(items: Sequence[str], flag: str) -> dict[str, Any]:
    """`key=value` (text) and `key:=json` (any JSON value) pairs from repeated options."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.rstrip(":"):
            raise UsageError(f"{flag} {item!r} must be key=value (text) or key:=JSON, e.g. {flag} review=\"Great.\"")
        if key.endswith(":"):
            out[key[:-1]] = _parse_value(value)
        else:
            out[key] = value
    return out


def input_names(program: Any) -> list[str]:
    """The inputs of a program: a Predict's signature inputs, else the named parameters of forward()."""
    import inspect

    from .predict import Predict

    if isinstance(program, Predict):
        return list(program.signature.input_fields)
    params = inspect.signature(program.forward).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not names:
        raise UsageError("cannot tell this program's inputs from its forward(); give --inputs a,b")
    return names
