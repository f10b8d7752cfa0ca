"""Load ``actortrade.toml``: TOML -> cattrs structuring -> path resolution -> the lot maps exist.

Every problem becomes a ``ConfigFileError`` whose lines read ``file: description @ key.path``
(``file: invalid TOML at line L, column C: ...`` for syntax errors). Structuring is strict: an
unknown key, a string where a number belongs or a bool where a number belongs is an error, never
a silent conversion.
"""

from __future__ import annotations

import enum
import math
import re
import stat
import sys
import tomllib
import types
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs
from cattrs import transform_error
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ForbiddenExtraKeysError,
)
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.tomllib import make_converter
from cattrs.v import format_exception

from .errors import ConfigFileError, InvalidSetting
from .files import MAX_INPUT_BYTES, InputFileError, read_input
from .schema import ALERT_SECRETS, Config, shown
from .strategies import STRATEGY_TABLES

__all__ = ["DEFAULT_CONFIG", "load_config", "parse_config", "render_config"]

# The shipped, fully commented config; its values are Config()'s defaults.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "actortrade.toml"

# How an error about the document's root table is located.
_TOP_LEVEL = "(top level)"


def load_config(path: Path) -> Config:
    """Read and check the config at ``path``; relative paths in it are relative to its directory."""
    source = str(path)
    try:
        text = read_input(path, limit=MAX_INPUT_BYTES).decode("utf-8")
    except InputFileError as exc:
        raise ConfigFileError(source, [f"cannot read the config: {exc.problem}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(text, source=source, base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str, base_dir: Path) -> Config:
    """Check the TOML ``text`` against the schema; ``source`` names it in errors and relative
    paths are resolved against ``base_dir``. Each symbol's lot map must exist (it is not read)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(source, [_syntax_problem(exc, text)]) from exc
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigFileError(
            source, ["invalid TOML: too deeply nested (arrays or inline tables)"]
        ) from None
    except ValueError as exc:
        # Not a TOMLDecodeError: int() refusing a number longer than Python converts.
        raise ConfigFileError(source, [_long_number_problem(exc, text)]) from None
    secrets = _alert_secrets(data)
    if secrets:
        raise ConfigFileError(source, secrets)
    try:
        config = _converter.structure(data, Config)
    except BaseValidationError as exc:
        raise ConfigFileError(source, _problems(exc)) from exc
    config = _resolve_paths(config, base_dir)
    missing = [
        f"{problem} @ symbols[{index}].lots"
        for index, entry in enumerate(config.symbols)
        if entry.lots is not None and (problem := _lot_map_problem(entry.lots)) is not None
    ]
    if missing:
        raise ConfigFileError(source, missing)
    return config


_SECRET_KEYS = ("url", "webhook", "webhook_url", "token", "bot_token", "chat_id", "ping_url")


def _alert_secrets(data: Mapping[str, Any]) -> list[str]:
    # A webhook URL or a bot token pasted into the file: refused with where it belongs
    # (its value is never shown), rather than as an unknown key.
    alerts = data.get("alerts")
    if not isinstance(alerts, dict):
        return []
    problems = []
    for channel, variables in ALERT_SECRETS.items():
        table = alerts.get(channel)
        keys = [k for k in table if k in _SECRET_KEYS] if isinstance(table, dict) else []
        keys += [k for k in alerts if k.startswith(f"{channel}_") and k.endswith(_SECRET_KEYS)]
        for key in keys:
            path = (
                f"alerts.{channel}.{key}"
                if isinstance(table, dict) and key in table
                else (f"alerts.{key}")
            )
            problems.append(
                f"secrets do not belong in the config file: set {' and '.join(variables)} in "
                f"the environment or .env @ {path}"
            )
    return problems


def render_config(config: Config) -> str:
    """The config as TOML (for ``actorctl check``); ``parse_config`` reads it back unchanged.

    An unset optional path is written as ``""``, which is how the loader reads "not set"."""
    lines: list[str] = []
    data = _converter.unstructure(config)
    for entry in data["symbols"]:
        # A strategy table not given is not written (TOML has no null).
        for table in (name.value for name in STRATEGY_TABLES):
            if entry[table] is None:
                del entry[table]
    for action in data["corporate_actions"]:
        for key in ("split", "dividend"):
            if action[key] is None:
                del action[key]
    _render_table(data, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


class _Invalid(ValueError):
    """A value a structure hook refuses; the message completes "expected <type>, ..."."""


def _wrong_type(value: object) -> _Invalid:
    return _Invalid(f"got {type(value).__name__}")


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _wrong_type(value)
    return value


def _structure_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(value)
    return value


def _structure_int(value: object, _: type) -> int:
    # bool is an int to Python, never to a config file.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(value)
    return value


def _structure_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(value)
    number = float(value)
    # TOML spells inf and nan; no duration or speed means either.
    if not math.isfinite(number):
        raise _Invalid(f"got {value}")
    return number


def _structure_decimal(value: object, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _wrong_type(value)
    try:
        # A float goes through its shortest repr, so that 0.01 means Decimal("0.01") and not
        # the binary fraction nearest to it.
        number = Decimal(str(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise _Invalid(f"got {value!r}") from None
    if not number.is_finite():
        raise _Invalid(f"got {value!r}")
    return number


def _structure_path(value: object, _: type) -> Path:
    if not isinstance(value, str):
        raise _wrong_type(value)
    if not value or "\0" in value:
        raise _Invalid(f"got {value!r}")
    try:
        return Path(value).expanduser()
    except RuntimeError:  # no home directory to expand "~" or "~user" to
        raise _Invalid(f"cannot expand ~ in {value!r}") from None


def _structure_optional_path(value: object, _: type) -> Path | None:
    # TOML has no null: "" stands for "not set", and render_config writes None as "".
    if value == "":
        return None
    return _structure_path(value, Path)


def _is_enum(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, enum.Enum)


def _structure_enum(value: object, type_: type[enum.Enum]) -> enum.Enum:
    if not isinstance(value, str):
        raise _wrong_type(value)
    try:
        return type_(value)
    except ValueError:
        raise _Invalid(f"got {value!r}") from None


def _is_array(type_: Any) -> bool:
    return get_origin(type_) is tuple


def _array_hook(type_: Any) -> Callable[[object, type], tuple[Any, ...]]:
    # The schema's tuples are all homogeneous, tuple[X, ...]. Without this check a string
    # would be structured character by character.
    (item, _ellipsis) = get_args(type_)
    # list[item], spelled so that mypy takes it as the runtime value it is here.
    items: Any = types.GenericAlias(list, (item,))

    def structure(value: object, _: type) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _wrong_type(value)
        return tuple(_converter.structure(value, items))

    return structure


def _table_hook(cls: type) -> Callable[[object, type], Any]:
    # The generated function takes forbid_extra_keys and detailed validation from the converter;
    # the check first turns `runtime = 3` into one error instead of one per field.
    structure: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(cls, _converter)

    def structure_table(value: object, _: type) -> Any:
        if not isinstance(value, dict):
            raise _wrong_type(value)
        return structure(value, cls)

    return structure_table


_converter = make_converter(forbid_extra_keys=True)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(float, _structure_float)
_converter.register_structure_hook(Decimal, _structure_decimal)
_converter.register_structure_hook(Path, _structure_path)
_converter.register_structure_hook(Path | None, _structure_optional_path)
_converter.register_structure_hook(enum.Enum, _structure_enum)
# A StrEnum is a str before it is an Enum, and hooks registered by class dispatch on the MRO.
_converter.register_structure_hook(enum.StrEnum, _structure_enum)
_converter.register_structure_hook_factory(_is_array, _array_hook)
_converter.register_structure_hook_factory(attrs.has, _table_hook)
_converter.register_unstructure_hook(Decimal, str)
_converter.register_unstructure_hook(Path, str)


def _problems(exc: BaseValidationError) -> list[str]:
    _locate_validator_errors(exc)
    problems = []
    for line in transform_error(exc, path="$", format_exception=_describe):
        # Paths are field names and indices, so the last " @ " is the separator.
        description, _, path = line.rpartition(" @ ")
        key = path.removeprefix("$").removeprefix(".")
        problems.append(f"{description} @ {key or _TOP_LEVEL}")
    return problems


def _locate_validator_errors(exc: BaseException) -> None:
    # attrs validators run in __init__, once cattrs has structured every field, so cattrs files
    # their errors under the table. The note cattrs itself uses moves them to the field's key.
    if not isinstance(exc, BaseValidationError):
        return
    for inner in exc.exceptions:
        notes = getattr(inner, "__notes__", [])
        if isinstance(inner, InvalidSetting) and not any(
            isinstance(note, AttributeValidationNote) for note in notes
        ):
            inner.add_note(AttributeValidationNote(f"validating {inner.key}", inner.key, None))
        _locate_validator_errors(inner)


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, InvalidSetting):
        return exc.problem
    if isinstance(exc, ForbiddenExtraKeysError):
        keys = ", ".join(shown(repr(key), 200) for key in sorted(exc.extra_fields))
        return f"extra field{'s' if len(exc.extra_fields) > 1 else ''} {keys}"
    if isinstance(exc, _Invalid):
        return f"invalid value for type, expected {_expected(type_)}, {exc}"
    return format_exception(exc, type_)


def _expected(type_: Any) -> str:
    if get_origin(type_) in (Union, types.UnionType):
        (type_,) = (member for member in get_args(type_) if member is not types.NoneType)
    if _is_enum(type_):
        return "one of " + ", ".join(repr(member.value) for member in type_)
    if attrs.has(type_):
        return "a table"
    if _is_array(type_):
        return "an array of tables"
    return getattr(type_, "__name__", repr(type_))


_SYNTAX_WHERE = re.compile(r"(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)", re.S)
_SYNTAX_AT_END = " (at end of document)"


def _long_number_problem(exc: ValueError, text: str) -> str:
    digits = sys.get_int_max_str_digits()
    match = re.search(rf"[0-9](?:_?[0-9]){{{digits},}}", text) if digits else None
    if match is None:
        return f"invalid TOML: {exc}"
    line = text.count("\n", 0, match.start()) + 1
    return f"invalid TOML at line {line}: a number of more than {digits} digits"


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str) -> str:
    # tomllib puts the position only in its message (attributes came in Python 3.14).
    message = str(exc)
    if match := _SYNTAX_WHERE.fullmatch(message):
        what, line, column = match["what"], int(match["line"]), int(match["column"])
    elif message.endswith(_SYNTAX_AT_END):
        what = message.removesuffix(_SYNTAX_AT_END)
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    else:
        return f"invalid TOML: {message}"
    return f"invalid TOML at line {line}, column {column}: {what[:1].lower()}{what[1:]}"


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    # Relative to the config file, not to the working directory: a service's working directory
    # is wherever it was started from (systemd: /).
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else base_dir / path

    def resolve_optional(path: Path | None) -> Path | None:
        return None if path is None else resolve(path)

    return attrs.evolve(
        config,
        data_dir=resolve_optional(config.data_dir),
        control=attrs.evolve(config.control, socket=resolve_optional(config.control.socket)),
        venue=attrs.evolve(config.venue, replay=resolve_optional(config.venue.replay)),
        symbols=tuple(
            attrs.evolve(entry, lots=resolve_optional(entry.lots)) for entry in config.symbols
        ),
    )


def _lot_map_problem(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"lot map {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"lot map {path}: not a file"
    return None


def _render_table(table: Mapping[str, Any], header: tuple[str, ...], lines: list[str]) -> None:
    # TOML wants a table's own keys before any sub-table header.
    nested = []
    for key, value in table.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_render_value(value)}")
    for key, value in nested:
        path = (*header, key)
        if isinstance(value, dict):
            lines.extend(["", f"[{'.'.join(path)}]"])
            _render_table(value, path, lines)
        else:
            for entry in value:
                lines.extend(["", f"[[{'.'.join(path)}]]"])
                _render_table(entry, path, lines)


def _render_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_render_value(item) for item in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _quote(text: str) -> str:
    # A TOML basic string: escape the quote, the backslash and the control characters.
    escaped = (
        f"\\{char}"
        if char in '"\\'
        else f"\\u{ord(char):04x}"
        if ord(char) < 0x20 or ord(char) == 0x7F
        else char
        for char in text
    )
    return '"' + "".join(escaped) + '"'
