"""One config system for every command: dataclasses, filled from YAML, overridden on the CLI.

A step's config is a (nested) dataclass with defaults. `load_config(Cls, path, ["a.b=3"])`
reads a YAML file with `yaml.safe_load` (never a full loader: configs may come from strangers),
applies dotted overrides, checks every key exists and converts values to the field's type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from funfactory.errors import FunfactoryError

T = TypeVar("T")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where) if len(inner) == 1 else value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise FunfactoryError(f"config {where}: expected a mapping, got {value!r}")
        return _from_dict(annotation, value, where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise FunfactoryError(f"config {where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise FunfactoryError(f"config {where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise FunfactoryError(f"config {where}: expected true/false, got {value!r}")
        return bool(value)
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise FunfactoryError(
                f"config {where}: expected {annotation.__name__}, got {value!r}") from None
    return value


def _from_dict(cls: type[T], data: dict, where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise FunfactoryError(
            f"config {where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise FunfactoryError(f"override {dotted}={raw}: {k} is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: list[str] | None = None) -> T:
    """Build `cls` from its defaults, a YAML file and `key.sub=value` overrides, in that order."""
    tree = dataclasses.asdict(cls())
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise FunfactoryError(f"config file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise FunfactoryError(f"config file {path} is not plain YAML (only the safe loader is used): {e}") from None
        if not isinstance(loaded, dict):
            raise FunfactoryError(f"config file {path}: top level must be a mapping")
        _merge(tree, loaded)
    for item in overrides or []:
        if "=" not in item:
            raise FunfactoryError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), raw.strip())
    return _from_dict(cls, tree)


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def config_sha256(config: Any) -> str:
    """A stable hash of a config, recorded in every sample's lineage."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def dump_config(config: Any) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
