"""``workflows.converter``: the SDK's JSON converter, byte for byte and value for value."""

import dataclasses
import enum
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, value_to_type

from activities.read_model import decode_cart
from workflows.contract import Cart, CartInput, CartState, ProjectCartInput
from workflows.converter import DATA_CONVERTER, decoder

SDK = DataConverter.default.payload_converter
OURS = DATA_CONVERTER.payload_converter
CARTS = json.loads((Path(__file__).parent / "replayed_carts.json").read_text())


def _payload(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


@pytest.mark.parametrize("name", sorted(CARTS))
def test_every_recorded_cart_encodes_and_decodes_as_the_sdk_does(name: str) -> None:
    cart = decode_cart(CARTS[name])
    for value, hint in (
        (cart, Cart),
        (CartInput(shop_id=cart.shop_id, cart_id=cart.cart_id, cart=cart), CartInput),
        (ProjectCartInput(cart=cart, assign_number=True), ProjectCartInput),
    ):
        (sdk,) = SDK.to_payloads([value])
        (ours,) = OURS.to_payloads([value])
        assert ours.data == sdk.data
        assert ours.metadata == sdk.metadata
        assert OURS.from_payloads([sdk], [hint]) == SDK.from_payloads([sdk], [hint])
        assert OURS.from_payloads([sdk], [hint])[0] == value


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclasses.dataclass
class Inner:
    name: str
    at: datetime | None = None


@dataclasses.dataclass
class Outer:
    count: int
    ratio: float
    flag: bool
    colour: Colour
    size: Size
    inner: Inner
    inners: list[Inner]
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    anything: Any = None
    maybe: int | None = None
    later: str = dataclasses.field(default="", init=False)


HINTS: list[Any] = [
    int,
    float,
    str,
    bool,
    datetime,
    Any,
    Colour,
    Size,
    int | None,
    Inner | None,
    list[int],
    list[Inner],
    tuple[str, ...],
    dict[str, int],
    dict[str, Any],
    Inner,
    Outer,
]

#: the fields of ``Outer`` and ``Inner``, and one neither has
KEYS = [f.name for f in dataclasses.fields(Outer)] + ["name", "at", "other"]

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.sampled_from(["red", "blue", "x", "2026-11-22T14:02:44+00:00", "2026-13-01", ""])
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS),
            children,
            max_size=12,
        )
    ),
    max_leaves=20,
)


def _outcome(convert: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("value", convert(value))
    except Exception as error:
        return ("error", (type(error), str(error)))


@settings(max_examples=600, deadline=None)
@given(hint=st.sampled_from(HINTS), value=JSON)
def test_any_json_value_converts_as_value_to_type_converts_it(hint: Any, value: Any) -> None:
    """The same value, or the same error (type and message), for any JSON value."""
    ours = _outcome(decoder(hint), value)
    sdk = _outcome(lambda v: value_to_type(hint, v), value)
    assert ours == sdk
    if ours[0] == "value":
        assert type(ours[1]) is type(sdk[1])


@settings(max_examples=200, deadline=None)
@given(
    outer=st.builds(
        Outer,
        inner=st.builds(Inner, at=st.none() | st.datetimes(timezones=st.just(UTC))),
        inners=st.lists(st.builds(Inner), max_size=3),
        ratio=st.floats(allow_nan=False),
        anything=st.none() | st.integers() | st.lists(st.text(max_size=3), max_size=2),
    )
)
def test_a_dataclass_tree_round_trips_with_the_sdks_bytes(outer: Outer) -> None:
    outer.later = "set after init"
    (sdk,) = SDK.to_payloads([outer])
    (ours,) = OURS.to_payloads([outer])
    assert ours.data == sdk.data
    assert OURS.from_payloads([ours], [Outer]) == SDK.from_payloads([ours], [Outer])


def test_a_payload_that_is_not_json_fails_as_the_sdks_does() -> None:
    bad = Payload(metadata={"encoding": b"json/plain"}, data=b"{not json")
    with pytest.raises(RuntimeError) as ours:
        OURS.from_payloads([bad], [Cart])
    with pytest.raises(RuntimeError) as sdk:
        SDK.from_payloads([bad], [Cart])
    assert str(ours.value) == str(sdk.value)
    assert str(ours.value.__cause__) == str(sdk.value.__cause__) == "Failed parsing"


def test_a_state_the_enum_does_not_know_is_refused_as_by_the_sdk() -> None:
    payload = _payload("no_such_state")
    with pytest.raises(Exception) as ours:
        OURS.from_payloads([payload], [CartState])
    with pytest.raises(Exception) as sdk:
        SDK.from_payloads([payload], [CartState])
    assert type(ours.value) is type(sdk.value)


@pytest.mark.parametrize(
    ("first", "second", "value"),
    [
        (float | int, int | float, 1.5),
        (int | float, float | int, 1.5),
        (str | datetime, datetime | str, "2026-11-22T14:02:44+00:00"),
        (list[bool | int], list[int | bool], [1, True]),
    ],
)
def test_unions_in_another_order_convert_in_their_own_order(
    first: Any, second: Any, value: Any
) -> None:
    """``int | float == float | int`` (one hash), but the SDK tries the members in the
    order written: each order converts as the SDK converts it, whichever came first."""
    assert first == second
    for hint in (first, second):
        ours = decoder(hint)(value)
        sdk = value_to_type(hint, value)
        assert ours == sdk
        assert type(ours) is type(sdk)
