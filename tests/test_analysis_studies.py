"""The head/layer studies (``gradellm_lens.cli.studies``) run end to end on the tiny model (tiny sizes),
the CLI finds them, also from an installed package without the source checkout, and they write under the
working directory (``runs/studies/NAME``) or to ``--out``, never into the package."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradellm_lens.cli.main import main as cli_main
from gradellm_lens.cli.study import STUDIES, load_study

pytestmark = pytest.mark.filterwarnings("ignore:.*not in the model's vocabulary")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "tellmewhy_test_annotated.jsonl").is_file(), reason="shared/data not present"
)
TINY = [
    "--model", "tiny-llama", "--task", "tellmewhy", "--n", "2", "--max-new-tokens", "2", "--threads", "1",
    "--data-dir", str(SHARED),
]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@needs_shared
def test_head_curves_study(tmp_path):
    args = [*TINY, "--random-seeds", "2", "--generate-k", "2", "--mode", "mean", "--n-ref", "2", "--out", str(tmp_path)]
    assert load_study("head_curves").main(args) == 0
    points = _rows(tmp_path / "head_curves_mean_tellmewhy_points.csv")
    assert {r["order"] for r in points} == {"grad_ellm", "output_norm", "random"}
    assert [int(r["k"]) for r in points if r["order"] == "random"] == [0, 1, 2, 4, 8]  # 2 layers x 4 heads
    assert all(abs(float(r["logit_drop"])) < 1e-4 for r in points if r["k"] == "0")
    auc = _rows(tmp_path / "head_curves_mean_tellmewhy_auc.csv")
    assert [r["n_orders"] for r in auc] == ["1", "1", "2"]
    assert all(0.0 <= float(r["gen_agreement_at_2"]) <= 1.0 for r in auc)
    assert (tmp_path / "head_curves_mean_tellmewhy.png").stat().st_size > 0
    assert (tmp_path / "head_curves_mean_tellmewhy_auc.md").read_text().startswith("# Curve AUC")


@needs_shared
def test_head_agreement_study(tmp_path):
    assert load_study("head_agreement").main([*TINY, "--out", str(tmp_path)]) == 0
    rows = _rows(tmp_path / "head_agreement_tellmewhy.csv")
    assert {(r["level"], r["truth"]) for r in rows} == {(lv, t) for lv in ("query", "kv") for t in ("drop", "abs_drop")}
    assert {r["n_units"] for r in rows} == {"8", "4"}
    assert all(-1.0 <= float(r["spearman"]) <= 1.0 for r in rows if r["spearman"] != "nan")
    assert (tmp_path / "head_agreement_tellmewhy.png").is_file()


@needs_shared
def test_layer_sweep_study(tmp_path):
    args = [*TINY, "--n", "1", "--pis", "0.3,0.7", "--out", str(tmp_path)]
    assert load_study("layer_sweep").main(args) == 0
    rows = _rows(tmp_path / "layer_sweep_tellmewhy.csv")
    assert rows[0]["config"] == "K=1 (default)" and float(rows[0]["d_auc_pi_ns"]) == 0.0
    assert "random" in {r["config"] for r in rows} and "variant=reference" in {r["config"] for r in rows}
    assert all(0.0 <= float(r["auc_pi_nc"]) <= 1.0 for r in rows)


def test_cli_lists_and_rejects_studies(capsys):
    assert set(STUDIES) == {"head_curves", "head_agreement", "layer_sweep"}
    assert cli_main(["study", "head_curve"]) == 2
    assert "Did you mean 'head_curves'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["study", "layer_sweep", "--help"])
    assert exc.value.code == 0
    assert "--pis" in capsys.readouterr().out


def test_studies_run_from_the_installed_package_alone(tmp_path):
    """As from a wheel: only the package on the path, no source checkout (no ``analyses/``) anywhere."""
    import gradellm_lens

    site = tmp_path / "site"
    shutil.copytree(Path(gradellm_lens.__file__).parent, site / "gradellm_lens",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import sys, gradellm_lens\n"
        "assert gradellm_lens.__file__.startswith(sys.argv[1]), gradellm_lens.__file__\n"
        "from gradellm_lens.cli.main import main\n"
        "sys.exit(main(['study', 'layer_sweep', '--help']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", script, str(site)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--pis" in proc.stdout and "(default: runs/studies/layer_sweep)" in " ".join(proc.stdout.split())
    assert not (work / "runs").exists()  # --help writes nothing


def test_studies_default_to_a_folder_under_the_working_directory(tmp_path, monkeypatch):
    """No default path points into the package: the output folder and the data folders are relative to the
    working directory; the checkout's ``analyses/`` wrappers name the committed results folder."""
    import gradellm_lens
    from gradellm_lens.tasks.data import DEFAULT_DATA_DIRS

    package = Path(gradellm_lens.__file__).resolve().parent
    for name in STUDIES:
        out = Path(load_study(name).build_parser().parse_args([]).out)
        assert out == Path("runs") / "studies" / name and not out.is_absolute()
    assert all(not d.is_absolute() for d in DEFAULT_DATA_DIRS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADELLM_LENS_DATA", raising=False)
    from gradellm_lens.errors import InvalidInputError
    from gradellm_lens.tasks.data import resolve_data_file

    with pytest.raises(InvalidInputError, match=r"not found.*\.\./shared/data"):
        resolve_data_file("sst2_validation.jsonl")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sst2_validation.jsonl").write_text("{}\n")
    found = resolve_data_file("sst2_validation.jsonl")
    assert found == tmp_path.resolve() / "data" / "sst2_validation.jsonl" and package not in found.parents
    root = Path(__file__).resolve().parents[1]
    for name in STUDIES:
        wrapper = (root / "analyses" / f"{name}.py").read_text(encoding="utf-8")
        assert f"from gradellm_lens.cli.studies.{name} import main" in wrapper
        assert 'RESULTS = "analyses/results/heads"' in wrapper and '["--out", RESULTS, *sys.argv[1:]]' in wrapper
