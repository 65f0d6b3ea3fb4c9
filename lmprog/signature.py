"""Signatures: the typed contract of one LM step — input fields, output fields, and an instruction.

    class Sentiment(lp.Signature):
        '''Classify the sentiment of a movie review.'''
        review: str = lp.InputField()
        label: Literal["positive", "negative"] = lp.OutputField(desc="overall sentiment")

A signature is a pydantic model class; its docstring is the instruction. Mistakes (a field without a type,
a field not marked input or output, an unsupported type) fail when the class is defined, naming the field.
Every transformation (`with_instructions`, `append`, `prepend`, `delete`) returns a new class.
"""

from __future__ import annotations

import enum
import json
import types
import typing
import weakref
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, TypeAdapter
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo

from .errors import UsageError

_ROLE_KEY = "__lmprog_role"
# Attributes of Example/Prediction: a field with one of these names would be hidden behind a method.
RESERVED_NAMES = frozenset({
    "items", "keys", "get", "copy", "inputs", "labels", "usage", "completions", "toDict", "to_dict", "with_inputs",
    "without", "input_keys", "from_completions", "kind",
})


def check_name(name: str, where: str, role: str | None = "output") -> None:
    if role == "output" and name in RESERVED_NAMES:
        raise UsageError(f"{where}: the field name {name!r} is reserved (predictions have an attribute of that "
                         "name); choose another name")
    if name.startswith("_"):
        raise UsageError(f"{where}: field {name!r} starts with an underscore; field names must be public")


_SCALARS: tuple[type, ...] = (str, int, float, bool)


def _field(role: str, desc: str | None, prefix: str | None, kwargs: dict[str, Any], multiline: bool = False) -> Any:
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[_ROLE_KEY] = role
    if prefix is not None:
        extra["prefix"] = prefix
    if multiline:
        extra["multiline"] = True
    return pydantic.Field(description=desc, json_schema_extra=extra, **kwargs)


def InputField(desc: str | None = None, *, prefix: str | None = None, **constraints: Any) -> Any:  # noqa: N802
    """Mark a signature field as an input; `desc` is shown to the model, pydantic constraints apply."""
    return _field("input", desc, prefix, constraints)


def OutputField(desc: str | None = None, *, prefix: str | None = None, multiline: bool = False,  # noqa: N802
                **constraints: Any) -> Any:
    """Mark a signature field as an output; `desc` is shown to the model, pydantic constraints apply.

    `multiline=True` lets a str output span lines (code, a file) where a format would otherwise keep it to one
    line (the completion adapter's grammar on the embedded model)."""
    return _field("output", desc, prefix, constraints, multiline)


def field_role(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    return extra.get(_ROLE_KEY) if isinstance(extra, dict) else None  # type: ignore[return-value]


def is_multiline(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("multiline"))


def field_label(name: str, info: FieldInfo | None = None) -> str:
    """The label a field has in prompts: its `prefix` if given, else `search_query` → `Search Query`."""
    extra = info.json_schema_extra if info is not None else None
    if isinstance(extra, dict) and extra.get("prefix"):
        return str(extra["prefix"]).rstrip(":").strip()
    return " ".join(w[:1].upper() + w[1:] for w in name.split("_") if w) or name


def check_type(tp: Any, where: str) -> None:
    """Raise UsageError unless `tp` is a type lmprog can render, parse and constrain."""
    if tp in _SCALARS:
        return
    if isinstance(tp, (str, typing.ForwardRef)):
        ref = tp if isinstance(tp, str) else tp.__forward_arg__
        raise UsageError(f"{where}: the annotation {ref!r} could not be resolved; define {ref} before the "
                         "signature, where the signature's module or function can see it")
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        return check_type(args[0], where)
    if origin is Literal:
        bad = [a for a in args if not isinstance(a, (str, int, bool))]
        if bad or not args:
            raise UsageError(f"{where}: Literal values must be str, int or bool, got {bad or 'nothing'}")
        return
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return
    if origin is list:
        if not args:
            raise UsageError(f"{where}: bare `list` has no item type; write e.g. list[str]")
        return check_type(args[0], where)
    if origin is dict:
        if len(args) != 2:
            raise UsageError(f"{where}: bare `dict` has no key/value types; write e.g. dict[str, int]")
        if args[0] is not str:
            raise UsageError(f"{where}: dict keys must be str (JSON objects), got {type_name(args[0])}")
        return check_type(args[1], where)
    if origin in (Union, types.UnionType):
        for a in args:
            if a is not type(None):
                check_type(a, where)
        return
    raise UsageError(
        f"{where}: unsupported type {type_name(tp)}; use str, int, float, bool, Literal[...], an Enum, "
        "Optional[...], list[...], dict[str, ...] or a pydantic model"
    )


def type_name(tp: Any) -> str:
    """A stable, readable name for a type annotation (used in prompts, fingerprints and saved files)."""
    if tp is type(None):
        return "None"
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp)


_DERIVED: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def derived(cls: type) -> dict[str, Any]:
    """Per-class memo of things derived from a signature (field views, type adapters, templates, grammars).

    Signature classes never change after creation; keeping the memo outside the class keeps it out of
    pydantic's attribute handling and never shared with a base class.
    """
    memo = _DERIVED.get(cls)
    if memo is None:
        memo = _DERIVED[cls] = {}
    return memo


class SignatureMeta(ModelMetaclass):
    """Checks a signature class body before pydantic builds it, so errors name the field at fault."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> Any:
        if ns.get("__module__") != __name__ or name != "Signature":
            _check_body(name, ns)
        if "__pydantic_reset_parent_namespace__" not in kw:
            # pydantic reads the locals of the frame that defines the class, to resolve postponed annotations
            # naming local classes; this __new__ adds a frame, so hand it the right one explicitly.
            from pydantic._internal._model_construction import build_lenient_weakvaluedict
            from pydantic._internal._typing_extra import parent_frame_namespace

            ns["__pydantic_parent_namespace__"] = build_lenient_weakvaluedict(parent_frame_namespace(parent_depth=2))
            kw["__pydantic_reset_parent_namespace__"] = False
        return super().__new__(mcs, name, bases, ns, **kw)

    # Class-level views; a signature is used as a class, rarely instantiated.
    @property
    def instructions(cls) -> str:
        doc = cls.__dict__.get("__doc__")
        if doc and doc.strip():
            return _dedent(doc)
        ins = ", ".join(f"`{n}`" for n in cls.input_fields)
        outs = ", ".join(f"`{n}`" for n in cls.output_fields)
        return f"Given the fields {ins}, produce the fields {outs}."

    @property
    def input_fields(cls) -> dict[str, FieldInfo]:
        return cls._split_fields()[0]

    @property
    def output_fields(cls) -> dict[str, FieldInfo]:
        return cls._split_fields()[1]

    def _split_fields(cls) -> tuple[dict[str, FieldInfo], dict[str, FieldInfo]]:
        # A signature class never changes after creation, so its field views are computed once.
        cache = derived(cls)
        split = cache.get("__fields__")
        if split is None:
            fields: dict[str, FieldInfo] = cls.model_fields  # type: ignore[attr-defined]
            ins = {n: f for n, f in fields.items() if field_role(f) == "input"}
            outs = {n: f for n, f in fields.items() if field_role(f) == "output"}
            split = cache["__fields__"] = (ins, outs)
        return split  # type: ignore[no-any-return]

    @property
    def fields(cls) -> dict[str, FieldInfo]:
        return dict(cls.model_fields)  # type: ignore[attr-defined]

    def __repr__(cls) -> str:
        return f"{cls.__name__}({cls.signature_string()})"  # type: ignore[attr-defined]


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


def _check_body(name: str, ns: dict[str, Any]) -> None:
    annotations = ns.get("__annotations__", {})
    for attr, value in ns.items():
        if isinstance(value, FieldInfo) and field_role(value) and attr not in annotations:
            raise UsageError(
                f"signature {name}: field {attr!r} has no type annotation; write `{attr}: str = "
                f"lp.{'InputField' if field_role(value) == 'input' else 'OutputField'}()`"
            )
    for attr, ann in annotations.items():
        if attr.startswith("_"):
            continue
        value = ns.get(attr)
        if not (isinstance(value, FieldInfo) and field_role(value)):
            raise UsageError(
                f"signature {name}: field {attr!r} is not marked as input or output; write "
                f"`{attr}: ... = lp.InputField()` or `lp.OutputField()`"
            )
        check_name(attr, f"signature {name}", field_role(value))
        if isinstance(ann, str):
            continue  # postponed annotation: checked after pydantic resolves it
        check_type(ann, f"signature {name}, field {attr!r}")


class Signature(BaseModel, metaclass=SignatureMeta):
    """Base class of signatures: subclass it, write a docstring (the instruction) and typed fields."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=False, protected_namespaces=())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for n, f in cls.model_fields.items():
            check_type(f.annotation, f"signature {cls.__name__}, field {n!r}")
        if not cls.output_fields:
            raise UsageError(f"signature {cls.__name__} has no output field; add one with lp.OutputField()")

    @classmethod
    def annotation(cls, name: str) -> Any:
        return cls.model_fields[name].annotation

    @classmethod
    def type_adapter(cls, name: str) -> TypeAdapter[Any]:
        """A cached pydantic TypeAdapter for one field (validation of inputs and parsed outputs)."""
        cache = derived(cls)
        ta = cache.get(name)  # keyed by field name; other entries use keys that start with '__'
        if ta is None:
            f = cls.model_fields[name]
            ann: Any = f.annotation
            if f.metadata:
                ann = typing.Annotated[(ann, *f.metadata)]  # keep constraints such as ge=, max_length=
            ta = cache[name] = TypeAdapter(ann)
        return ta

    @classmethod
    def signature_string(cls) -> str:
        def part(fields: dict[str, FieldInfo]) -> str:
            return ", ".join(n if f.annotation is str else f"{n}: {type_name(f.annotation)}" for n, f in fields.items())

        return f"{part(cls.input_fields)} -> {part(cls.output_fields)}"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-safe description: field names, roles, types and descriptions."""
        return {
            "name": cls.__name__,
            "instructions": cls.instructions,
            "fields": [
                {"name": n, "role": field_role(f), "type": type_name(f.annotation), "desc": f.description}
                for n, f in cls.model_fields.items()
            ],
        }

    @classmethod
    def fingerprint(cls) -> str:
        """A hash of the field names, roles and types (not the instruction, which optimizers change)."""
        import hashlib

        shape = [[n, field_role(f), type_name(f.annotation)] for n, f in cls.model_fields.items()]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    # -- transformations, each returning a new class --------------------------------------------------------
    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        return _rebuild(cls, list(cls.model_fields.items()), instructions)

    @classmethod
    def append(cls, name: str, field: Any, type_: Any = str) -> type[Signature]:
        """Add a field after the others of its role (input or output)."""
        return cls._insert(name, field, type_, at_start=False)

    @classmethod
    def prepend(cls, name: str, field: Any, type_: Any = str) -> type[Signature]:
        """Add a field before the others of its role (input or output)."""
        return cls._insert(name, field, type_, at_start=True)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        if name not in cls.model_fields:
            raise UsageError(f"signature {cls.__name__} has no field {name!r} to delete; "
                             f"fields: {list(cls.model_fields)}")
        return _rebuild(cls, [(n, f) for n, f in cls.model_fields.items() if n != name], cls.instructions)

    @classmethod
    def _insert(cls, name: str, field: Any, type_: Any, at_start: bool) -> type[Signature]:
        if name in cls.model_fields:
            raise UsageError(f"signature {cls.__name__} already has a field named {name!r}")
        if not (isinstance(field, FieldInfo) and field_role(field)):
            raise UsageError(f"field {name!r}: pass lp.InputField(...) or lp.OutputField(...)")
        check_name(name, f"signature {cls.__name__}", field_role(field))
        check_type(type_, f"signature {cls.__name__}, field {name!r}")
        new = FieldInfo.merge_field_infos(field, annotation=type_)
        role = field_role(field)
        items = list(cls.model_fields.items())
        same = [i for i, (_, f) in enumerate(items) if field_role(f) == role]
        if not same:
            pos = len(items) if role == "output" else 0
        else:
            pos = same[0] if at_start else same[-1] + 1
        items.insert(pos, (name, new))
        return _rebuild(cls, items, cls.instructions)


def _rebuild(base: type[Signature], items: list[tuple[str, FieldInfo]], instructions: str) -> type[Signature]:
    fields = {n: (f.annotation, FieldInfo.merge_field_infos(f)) for n, f in items}
    cls = pydantic.create_model(  # type: ignore[call-overload]
        base.__name__, __base__=Signature, __doc__=instructions, __module__=base.__module__, **fields
    )
    return typing.cast(type[Signature], cls)


def make_signature(
    spec: str | dict[str, tuple[Any, Any]], instructions: str | None = None, name: str = "StringSignature",
    types: dict[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature class from `"a, b: list[str] -> c: int"` (no eval) or a dict of (type, field)."""
    if isinstance(spec, str):
        from ._sigparse import parse_signature

        inputs, outputs = parse_signature(spec, types or {})
        items: list[tuple[str, tuple[Any, Any]]] = [(n, (t, InputField())) for n, t in inputs]
        items += [(n, (t, OutputField())) for n, t in outputs]
    else:
        items = list(spec.items())
    seen: set[str] = set()
    for n, (t, info) in items:
        if n in seen:
            raise UsageError(f"signature {spec!r}: duplicate field name {n!r}")
        seen.add(n)
        check_name(n, f"signature {spec!r}", field_role(info) if isinstance(info, FieldInfo) else None)
        check_type(t, f"signature {spec!r}, field {n!r}")
    doc = instructions
    cls = pydantic.create_model(name, __base__=Signature, __doc__=doc, **dict(items))  # type: ignore[call-overload]
    return typing.cast(type[Signature], cls)


def ensure_signature(sig: str | type[Signature], instructions: str | None = None) -> type[Signature]:
    """Accept a Signature class or its string form; `instructions` replaces the docstring when given."""
    if isinstance(sig, str):
        return make_signature(sig, instructions)
    if isinstance(sig, type) and issubclass(sig, Signature):
        return sig.with_instructions(instructions) if instructions else sig
    raise UsageError(f"expected a Signature class or a string like 'question -> answer', got {sig!r}")
