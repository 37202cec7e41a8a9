"""The CloudFormation template of the whole stack and the values a deployment gives it.

The template is a file, ``template.yaml`` beside this module, so that it is read, diffed
and reviewed as one. ``mailspool aws template`` prints it unchanged, or with the
``Default:`` line of each parameter the user gives a value rewritten (nothing else);
``--parameters`` prints those values instead as a CloudFormation parameters file for
``aws cloudformation deploy --parameter-overrides file://FILE`` (also read by
``create-stack --parameters file://FILE``), leaving the template as reviewed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources

from mailspool.errors import ConfigurationError

__all__ = [
    "default_runtime",
    "fill_defaults",
    "parameter_names",
    "parameters_file",
    "template_text",
]

_PARAMETERS = "Parameters:\n"
_PARAMETER = re.compile(r"  ([A-Za-z0-9]+):\s*\n")
_PROPERTY_INDENT = "    "
_DEFAULT = _PROPERTY_INDENT + "Default:"


def template_text() -> str:
    """The template as packaged."""
    return resources.files("mailspool.aws").joinpath("template.yaml").read_text("utf-8")


def default_runtime(text: str | None = None) -> str:
    """The ``Runtime`` parameter's default (``python3.11``): the zip is built for it."""
    lines = (text or template_text()).splitlines(keepends=True)
    block = _parameter_blocks(lines)["Runtime"]
    [line] = [lines[i] for i in block if lines[i].startswith(_DEFAULT)]
    return line[len(_DEFAULT) :].strip().strip('"')


def parameter_names(text: str | None = None) -> list[str]:
    """The template's parameters, in the order it declares them."""
    lines = (text or template_text()).splitlines(keepends=True)
    return list(_parameter_blocks(lines))


def fill_defaults(values: Mapping[str, str], text: str | None = None) -> str:
    """The template with each named parameter's ``Default`` set to its value."""
    lines = (text or template_text()).splitlines(keepends=True)
    blocks = _parameter_blocks(lines)
    _check(values, blocks)
    # From the last block up, so that an inserted line moves no block still to be done.
    for name in sorted(values, key=lambda n: blocks[n].start, reverse=True):
        block = blocks[name]
        line = f"{_DEFAULT} {_yaml_string(name, values[name])}\n"
        found = next((i for i in block if lines[i].startswith(_DEFAULT)), None)
        if found is None:
            lines.insert(block.stop, line)
        else:
            lines[found] = line
    return "".join(lines)


def parameters_file(values: Mapping[str, str], text: str | None = None) -> str:
    """The values as a CloudFormation parameters file (JSON), in the template's order."""
    blocks = _parameter_blocks((text or template_text()).splitlines(keepends=True))
    _check(values, blocks)
    for name, value in values.items():
        _yaml_string(name, value)  # the same rule for both outputs
    entries = [
        {"ParameterKey": name, "ParameterValue": values[name]} for name in blocks if name in values
    ]
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


def _parameter_blocks(lines: list[str]) -> dict[str, range]:
    """Each parameter's lines: its name line and the indented lines below it."""
    blocks: dict[str, range] = {}
    name = None
    for number in range(lines.index(_PARAMETERS) + 1, len(lines)):
        line = lines[number]
        if line[:1] not in ("", " ", "\n", "#"):
            break  # the next top-level section
        match = _PARAMETER.fullmatch(line)
        if match:
            name = match[1]
            blocks[name] = range(number, number + 1)
        elif name is not None and line.startswith(_PROPERTY_INDENT):
            blocks[name] = range(blocks[name].start, number + 1)
    return blocks


def _check(values: Mapping[str, str], blocks: Mapping[str, range]) -> None:
    unknown = sorted(set(values) - set(blocks))
    if unknown:
        raise ConfigurationError(
            f"the template has no parameter {', '.join(unknown)}; it has {', '.join(blocks)}"
        )


def _yaml_string(name: str, value: str) -> str:
    """``value`` as a YAML double-quoted string (JSON's escapes are YAML's too)."""
    if not all(ch.isprintable() for ch in value):
        raise ConfigurationError(
            f"parameter {name}: {value!r} holds a control or line-break character"
        )
    return json.dumps(value, ensure_ascii=False)
