"""The code's shape, as docs/layout.md states it: layers point one way, and tests sit in tiers with
their shared parts in one place (no test module imports another)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
# Each package may import only packages of a lower layer (and `pcbench.conf`, the configs).
LAYERS = {"core": 0, "models": 1, "compressors": 2, "tasks": 2, "readers": 2, "runners": 3, "analysis": 3, "apps": 4}


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_layers_point_one_way() -> None:
    wrong = []
    for path in sorted((ROOT / "pcbench").rglob("*.py")):
        parts = path.relative_to(ROOT / "pcbench").parts
        if len(parts) < 2 or parts[0] not in LAYERS:
            continue
        for name in imported(path):
            other = name.split(".")[1] if name.startswith("pcbench.") else None
            if other is None or other in (parts[0], "conf"):
                continue
            if other not in LAYERS or LAYERS[other] >= LAYERS[parts[0]]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_tests_sit_in_tiers_and_import_no_other_test_module() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert {p.parent.name for p in modules} == {"unit", "component", "e2e"}, "a test module outside the tiers"
    test_names = {p.stem for p in modules}
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in modules for name in imported(p)
             if name.split(".")[0] in test_names]
    assert not wrong, "\n".join(wrong)


# Where an option's class may live elsewhere than `pcbench/compressors/OPTION.py` (docs/extending.md).
# presets of another option: its class
PRESETS = {"dspc": "chain", "llmlingua2_small": "llmlingua2", "openprovence": "provence"}
MODULE_OF = {"random": "random_drop", "recomp_abstractive": "recomp", "recomp_extractive": "recomp"}


def test_an_options_class_lives_in_the_module_of_its_name() -> None:
    from pcbench.runners.compose import option_values

    for path in sorted((ROOT / "pcbench" / "conf" / "compressor").glob("*.yaml")):
        option = path.stem
        target = str(option_values("compressor", option)["_target_"])
        module = PRESETS.get(option, MODULE_OF.get(option, option))
        assert target.rsplit(".", 2)[-2] == module, (option, target)
