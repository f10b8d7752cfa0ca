"""Command-line overrides: the schema's ranges, errors naming the option as typed."""

from __future__ import annotations

import math

import pytest

from config.errors import ConfigError
from config.options import OptionError, override
from config.schema import BrokerConfig, VenueConfig


def test_options_not_given_leave_the_table_as_it_is() -> None:
    """None means "not on the command line": the config's value stays."""
    broker = BrokerConfig(port=4002)
    assert override(broker, {"port": ("--port", None)}) is broker


def test_given_options_replace_their_keys() -> None:
    """Each given option sets its field."""
    broker = override(BrokerConfig(), {"port": ("--port", 4002), "client_id": ("--client-id", 7)})
    assert (broker.port, broker.client_id) == (4002, 7)


@pytest.mark.parametrize(
    ("field", "option", "value", "message"),
    [
        ("port", "--port", 99999, "--port: must be between 1 and 65535, got 99999"),
        ("client_id", "--client-id", -1, "--client-id: must be between 0 and 2147483646, got -1"),
    ],
)
def test_an_option_out_of_its_keys_range_is_named_as_typed(
    field: str, option: str, value: int, message: str
) -> None:
    """The error names the option, not the key it overrides."""
    with pytest.raises(OptionError) as info:
        override(BrokerConfig(), {field: (option, value), "host": ("--host", None)})
    assert str(info.value) == message


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, 1e-300])
def test_a_speed_of_inf_nan_or_below_the_range_is_refused(value: float) -> None:
    """Floats from the command line never went through the TOML loader's finiteness check."""
    with pytest.raises(ConfigError, match=r"^--speed: must be 0 \(as fast as possible\) or"):
        override(VenueConfig(), {"speed": ("--speed", value)})
