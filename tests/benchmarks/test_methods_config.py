"""The harness's methods.json holds each of the package's methods in its config's own fields."""

import dataclasses

import pytest

from benchmarks.harness.methods import HARNESS_KEYS, LORA_STRATEGIES, load_method_configs

METHODS = load_method_configs()


@pytest.mark.parametrize("name", sorted(LORA_STRATEGIES))
def test_every_setting_of_a_package_method_is_a_field_of_its_config(name):
    settings = {k: v for k, v in METHODS[name].items() if k not in HARNESS_KEYS}
    config_class = LORA_STRATEGIES[name].config_class
    assert set(settings) <= {f.name for f in dataclasses.fields(config_class)}
    config = config_class(**settings)  # and each value passes the config's checks
    assert all(getattr(config, k) == v for k, v in settings.items())


def test_every_lora_family_method_has_a_strategy():
    assert {n for n, m in METHODS.items() if m["family"] in ("lora", "share")} == set(LORA_STRATEGIES)
