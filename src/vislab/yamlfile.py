"""YAML files as plain data: recipes and run configs. Bounded (MAX_RECIPE_BYTES) and without
aliases, so a small file stays small data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vislab.errors import VislabError

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of keys; 1 MiB is far beyond any


class _PlainLoader(yaml.SafeLoader):
    """YAML without aliases: a recipe is plain keys and values, and an alias of an alias of
    ... (the "billion laughs") makes a few hundred bytes into billions of values."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}: write the "
                "values out, a recipe takes no anchors or aliases"
            )
        return super().compose_node(parent, index)


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
    except yaml.YAMLError as e:
        raise VislabError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if tree is None and empty_ok:
        return {}
    if not isinstance(tree, dict):
        what = "empty" if tree is None else "not a mapping of keys at the top level"
        raise VislabError(f"{path}: {what}")
    return tree
