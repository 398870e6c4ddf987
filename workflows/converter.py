"""The data converter of every cartkeeper client and worker: Temporal's default JSON
converter, byte for byte and value for value, made cheaper for the contract's dataclasses.

    client = await Client.connect(address, data_converter=DATA_CONVERTER)

A cart is an 8 kB tree of dataclasses that goes through the converter several times per
change (the projection's input, continue-as-new, the read model's snapshot). On Python
3.11 the default converter spends most of that in two places:

- **Encoding**: ``AdvancedJSONEncoder`` turns a dataclass into a dict with
  ``dataclasses.asdict``, which deep-copies every leaf. ``ContractJSONEncoder`` gives the
  JSON encoder each dataclass's fields as a shallow dict (their values are encoded by the
  same encoder). The JSON is the same: the same keys (sorted), the same values.
- **Decoding**: ``value_to_type`` resolves a dataclass's type hints (``get_type_hints``)
  and walks every hint generically, at every value. ``decoder(hint)`` compiles, once per
  hint, a function for the shapes the contract uses (dataclasses, ``X | None``, lists,
  tuples, ``dict[str, X]``, ``str``/``int``/``float``/``bool``, string and integer enums,
  ``datetime``, ``Any``). A value of exactly the expected JSON type is converted as
  ``value_to_type`` converts it; anything else (another type, a failed conversion, a hint
  this module does not compile) is handed to ``value_to_type`` itself for that value, so
  coercions and errors are the SDK's own.

``tests/test_converter.py`` checks both against the SDK's converter on every recorded
cart and on generated contract values.
"""

import dataclasses
import enum
import json
import threading
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    value_to_type,
)

Decode = Callable[[Any], Any]

_FIELDS: dict[type, tuple[str, ...]] = {}
_DECODERS: dict[tuple[Any, str], Decode] = {}
#: hints being compiled (only by the thread that holds ``_COMPILING``)
_PENDING: dict[tuple[Any, str], Decode] = {}
_COMPILING = threading.RLock()


class ContractJSONEncoder(AdvancedJSONEncoder):
    """``AdvancedJSONEncoder`` with a dataclass given as its fields, not deep-copied."""

    def default(self, o: Any) -> Any:
        cls = type(o)
        names = _FIELDS.get(cls)
        if names is None and dataclasses.is_dataclass(o) and not isinstance(o, type):
            names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(o))
        if names is not None:
            return {name: getattr(o, name) for name in names}
        return super().default(o)


def decoder(hint: Any) -> Decode:
    """The compiled conversion of a JSON value to ``hint`` (see the module's text)."""
    # Keyed by the hint and its text: ``int | float == float | int`` (one hash), but the
    # SDK tries a union's members in the order written, so the two convert differently.
    try:
        key = (hint, repr(hint))
        return _DECODERS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint: not compiled
        return _fallback(hint)
    with _COMPILING:  # (workflow tasks decode in several threads)
        if key in _DECODERS:
            return _DECODERS[key]
        if key in _PENDING:  # a dataclass that refers to itself: compiled below
            return _PENDING[key]
        compiled: list[Decode] = []
        _PENDING[key] = lambda value: compiled[0](value)
        try:
            compiled.append(_compile(hint))
        except Exception:  # (hints it cannot resolve, say): the SDK's conversion
            compiled.append(_fallback(hint))
        finally:
            del _PENDING[key]
        _DECODERS[key] = compiled[0]
        return compiled[0]


def _fallback(hint: Any) -> Decode:
    def convert(value: Any) -> Any:
        return value_to_type(hint, value)

    return convert


def _compile(hint: Any) -> Decode:
    slow = _fallback(hint)
    if hint is Any:
        return lambda value: value
    if hint is str or hint is bool:
        exact = hint
        return lambda value: value if type(value) is exact else slow(value)
    if hint is int:
        return lambda value: value if type(value) is int else slow(value)
    if hint is float:
        return lambda value: value if type(value) is float else slow(value)
    if hint is datetime:
        return _datetime(slow)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint, slow)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(hint, slow)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _optional(args, slow)
    if origin is list and len(args) == 1:
        return _sequence(list, args[0], slow)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence(tuple, args[0], slow)
    if origin is dict and len(args) == 2 and args[0] is str:
        return _str_dict(args[1], slow)
    return slow


def _sequence(
    kind: type[list[Any]] | type[tuple[Any, ...]], item_hint: Any, slow: Decode
) -> Decode:
    """``list[X]``, ``tuple[X, ...]`` from a JSON array (an item that fails: the SDK's
    conversion of the whole array, for its error)."""
    item = decoder(item_hint)

    def convert(value: Any) -> Any:
        if type(value) is not list:
            return slow(value)
        try:
            items = [item(x) for x in value]
        except Exception:
            return slow(value)
        return items if kind is list else tuple(items)

    return convert


def _datetime(slow: Decode) -> Decode:
    def convert(value: Any) -> Any:
        if type(value) is str:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        return slow(value)

    return convert


def _enum(hint: type[enum.Enum], slow: Decode) -> Decode:
    mixin = str if issubclass(hint, str) else int if issubclass(hint, int) else None
    if mixin is None:
        return slow

    def convert(value: Any) -> Any:
        if type(value) is mixin:
            try:
                return hint(value)
            except ValueError:
                pass
        return slow(value)

    return convert


def _optional(args: tuple[Any, ...], slow: Decode) -> Decode:
    """``X | None``: ``None`` is ``None`` (``X`` never takes it: the SDK tries ``X``
    first, and only ``Any`` would keep ``None``, as ``None``)."""
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1 or len(args) != 2:
        return slow
    inner = decoder(others[0])

    def convert(value: Any) -> Any:
        if value is None:
            return None
        try:
            return inner(value)
        except Exception:
            return slow(value)

    return convert


def _str_dict(value_hint: Any, slow: Decode) -> Decode:
    if value_hint is Any:
        return lambda value: dict(value) if type(value) is dict else slow(value)
    item = decoder(value_hint)

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            return slow(value)
        try:
            return {key: item(x) for key, x in value.items()}
        except Exception:
            return slow(value)

    return convert


def _dataclass(hint: type, slow: Decode) -> Decode:
    hints = typing.get_type_hints(hint)
    fields = [(f.name, f.init, decoder(hints[f.name])) for f in dataclasses.fields(hint)]

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            return slow(value)
        try:
            given: dict[str, Any] = {}
            later: dict[str, Any] = {}
            for name, init, field in fields:
                if name in value:
                    (given if init else later)[name] = field(value[name])
            obj = hint(**given)
            for name, field_value in later.items():
                object.__setattr__(obj, name, field_value)
            return obj
        except Exception:
            return slow(value)  # the SDK's own conversion: its result, or its error

    return convert


class ContractJSONPayloadConverter(JSONPlainPayloadConverter):
    """``json/plain`` as the SDK writes and reads it, through the compiled decoders."""

    def __init__(self) -> None:
        super().__init__(encoder=ContractJSONEncoder)

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        try:
            obj = json.loads(payload.data)
        except json.JSONDecodeError as err:
            raise RuntimeError("Failed parsing") from err
        return decoder(type_hint)(obj) if type_hint else obj


class ContractPayloadConverter(CompositePayloadConverter):
    """The default payload converters, with ``ContractJSONPayloadConverter`` for JSON."""

    def __init__(self) -> None:
        super().__init__(
            *(
                ContractJSONPayloadConverter()
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=ContractPayloadConverter
)
