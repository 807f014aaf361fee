"""One source of defaults: every task and reader YAML sets exactly its class's fields, which carry none."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import composed, make
from hydra.utils import get_class
from omegaconf import OmegaConf

from pcbench.core.errors import PcbenchError
from pcbench.runners.catalog import options as group_options

OPTIONS = [(group, option) for group in ("task", "reader") for option in group_options(group)]


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_yaml_sets_every_field_and_the_class_sets_no_default(group: str, option: str) -> None:
    node = composed(group, option)
    cls = get_class(node._target_)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    with_default = [f.name for f in fields
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    # The one exception: the length bounds every task gained later are null when a task YAML written
    # before them (a user's own) leaves them out; the shipped YAMLs set them.
    with_default = [name for name in with_default if not (group == "task" and name in ("min_tokens", "max_tokens"))]
    assert not with_default, f"{cls.__name__} fields with a second default: {with_default}"
    assert set(node) - {"_target_"} == {f.name for f in fields}


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_builds_from_its_yaml(group: str, option: str) -> None:
    node = composed(group, option)
    missing = sorted(OmegaConf.missing_keys(node))
    if missing:  # e.g. reader=transformers: the model must come from the command line, in one line
        with pytest.raises(PcbenchError, match="has no value"):
            make(group, option)
        return
    if (group, option) == ("task", "custom"):  # the user's data must come from the command line or a YAML
        with pytest.raises(PcbenchError, match="task=custom needs its data"):
            make(group, option)
        make(group, option, path="qa.jsonl")
        return
    make(group, option)


@pytest.mark.parametrize(("group", "option", "knob", "value", "allowed"), [
    ("task", "niah", "depths", [50, 101], "in [0, 100]"),
    ("task", "hotpotqa", "chat", "yes", "true or false"),
    ("task", "longbench/hotpotqa", "max_new_tokens", 0, ">= 1 or null"),
    ("reader", "smollm2", "max_input_tokens", 1, ">= 2"),
    ("reader", "smollm2", "trust_remote_code", "no", "true or false"),
])
def test_values_outside_the_annotation_name_what_is_allowed(group: str, option: str, knob: str, value: object,
                                                            allowed: str) -> None:
    with pytest.raises(PcbenchError, match=rf"{group}\.{knob}=.* is not allowed; allowed: .*{re.escape(allowed)}"):
        make(group, option, **{knob: value})


def test_unknown_keys_list_the_allowed_ones() -> None:
    with pytest.raises(PcbenchError, match=r"task has no key 'lenghts'; did you mean 'lengths'\? allowed: .*lengths"):
        make("task", "niah", lenghts=[1])
