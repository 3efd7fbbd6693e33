import pytest
import torch

from scn import pretrain
from scn.cli import main
from scn.model import SCN, PretrainedWeightsError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


BUILD = pretrain.build_backbone


def tiny_build():
    return BUILD(people=4, images_per_person=3, image_size=32, epochs=1, log=lambda m: None,
                                   progress=False)


def test_build_backbone_keeps_only_the_trunk_and_records_its_recipe():
    checkpoint = tiny_build()
    assert checkpoint["model"] and all(k.startswith("features.") for k in checkpoint["model"])
    recipe = checkpoint["recipe"]
    assert recipe["people"] == 4 and recipe["expression_labels"] is False
    assert 0.0 <= recipe["identity_accuracy"] <= 1.0 and recipe["chance"] == 0.25


def test_synth_face_loads_from_the_cache_once_built(cache, monkeypatch):
    with pytest.raises(PretrainedWeightsError, match="python -m scn pretrain"):
        SCN(7, pretrained="synth-face")
    built = []
    monkeypatch.setattr(pretrain, "build_backbone", lambda **kw: built.append(1) or tiny_build())
    path = pretrain.ensure_backbone(log=lambda m: None, progress=False)
    assert path == pretrain.backbone_path() and path.is_file() and path.parent.parent == cache
    assert pretrain.ensure_backbone(log=lambda m: None, progress=False) == path and built == [1]
    model = SCN(7, pretrained="synth-face")
    assert model.load_report.fraction == 1.0 and "synth-face" in model.load_report.source
    saved = torch.load(path, weights_only=True)["model"]
    assert torch.equal(model.features[0].weight, saved["features.0.weight"])


def test_pretrain_command_refuses_a_custom_recipe_into_the_cache(cache, capsys):
    assert main(["pretrain", "--people", "8"]) == 2
    assert "--out" in capsys.readouterr().err


def test_pretrain_command_writes_a_custom_backbone(tmp_path, capsys):
    out = tmp_path / "face.pt"
    assert main(["pretrain", "--out", str(out), "--people", "3", "--images-per-person", "3", "--epochs", "1",
                 "--no-progress"]) == 0
    assert "held-out identity accuracy" in capsys.readouterr().out
    assert SCN(7, pretrained=str(out)).load_report.fraction == 1.0


def test_a_recipe_must_leave_training_images():
    with pytest.raises(ValueError, match="more than 2 images"):
        pretrain.build_backbone(people=3, images_per_person=2, epochs=1, log=lambda m: None, progress=False)
