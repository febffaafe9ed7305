"""YAML files as plain data: recipes and run configs. Bounded (MAX_RECIPE_BYTES, MAX_DEPTH),
without aliases, so a small file stays small data, and without a key given twice in a mapping
(YAML would keep the last silently)."""

from __future__ import annotations

import collections.abc
from pathlib import Path
from typing import Any

import yaml

from vislab.errors import VislabError

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of keys; 1 MiB is far beyond any
# a recipe nests a few levels (section, key, list of lists); reading, checking and writing
# deeper values back would recurse as deep, past Python's recursion limit
MAX_DEPTH = 100


class RefusedYAML(yaml.YAMLError):
    """Valid YAML that is no recipe: nested beyond MAX_DEPTH, or a key given twice."""


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases: a recipe is plain keys and values, and an alias of an alias of
    ... (the "billion laughs") makes a few hundred bytes into billions of values. Nothing
    nested deeper than MAX_DEPTH, no key twice in one mapping (RefusedYAML)."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(
                f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}: write the "
                "values out, a recipe takes no anchors or aliases"
            )
        if self.depth >= MAX_DEPTH:
            mark = event.start_mark
            raise RefusedYAML(
                f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1}, column "
                f"{mark.column + 1}): a recipe is plain keys and values"
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        """A mapping whose keys are each given once (in any spelling: 1 and 0x1 are one key)."""
        seen = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if not isinstance(key, collections.abc.Hashable):
                continue  # refused below, as YAML does
            line = key_node.start_mark.line + 1
            if key in seen:
                raise RefusedYAML(
                    f"the key {key!r} is given twice (lines {seen[key]} and {line}): give "
                    "each key once (YAML would keep the last)"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str | bytes) -> Any:
    """YAML text as plain data, refusing aliases (_PlainLoader)."""
    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 (a SafeLoader)


def read_yaml_mapping(path: Path, empty_ok: bool = False) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is {} when empty_ok); anything
    else is a one-line error naming the file. Files over MAX_RECIPE_BYTES and aliases are
    refused."""
    size = Path(path).stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise VislabError(f"{path}: {size:,} bytes is no recipe (at most {MAX_RECIPE_BYTES:,})")
    try:
        tree = parse_yaml(Path(path).read_bytes())
    except RefusedYAML as e:
        raise VislabError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise VislabError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if tree is None and empty_ok:
        return {}
    if not isinstance(tree, dict):
        what = "empty" if tree is None else "not a mapping of keys at the top level"
        raise VislabError(f"{path}: {what}")
    return tree
