import pytest
import torch

from scn import pretrain
from scn.cli import main
from scn.model import PretrainedWeightsError
from scn.starts import build_model


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
    assert 0.0 < recipe["landmark_error_px"] < 32


def test_a_flipped_face_has_its_landmarks_mirrored_and_swapped():
    images = torch.zeros(64, 3, 8, 8, dtype=torch.uint8)
    images[:, :, :, :2] = 255  # a bright band on the left edge shows whether an image was flipped
    # Seven left/right pairs (left at x 1, right at x 6, the right one half a pixel lower), then six
    # points on the midline (x 4), as scn.synth.face orders the outline.
    pairs = [[(1.0, k), (6.0, k + 0.5)] for k in range(7)]
    midline = [(4.0, 7.0 + j) for j in range(6)]
    points = torch.tensor([p for pair in pairs for p in pair] + midline).expand(64, 20, 2)
    x, target = pretrain.face_batch(images, points, generator=torch.Generator().manual_seed(0))
    flipped = x[:, :, :, -1].mean(dim=(1, 2)) > x[:, :, :, 0].mean(dim=(1, 2))
    assert 0 < int(flipped.sum()) < 64
    pixels = (target.reshape(-1, 20, 2) + 1) / 2 * 8
    assert torch.allclose(pixels[~flipped], points[~flipped])
    # In a flipped face the left point of each pair is the mirror of the right one (x 6 → 2).
    mirrored = torch.tensor([(2.0, k + 0.5) for k in range(7)])
    assert torch.allclose(pixels[flipped][:, 0:14:2], mirrored.expand(int(flipped.sum()), 7, 2))
    assert torch.allclose(pixels[flipped][:, 14:], torch.tensor([(4.0, 7.0 + j) for j in range(6)]))


def test_synth_face_loads_from_the_cache_once_built(cache, monkeypatch):
    with pytest.raises(PretrainedWeightsError, match="scn pretrain"):
        build_model(7, start="synth-face")
    built = []
    monkeypatch.setattr(pretrain, "build_backbone", lambda **kw: built.append(1) or tiny_build())
    path = pretrain.ensure_backbone(log=lambda m: None, progress=False)
    assert path == pretrain.backbone_path() and path.is_file() and path.parent.parent == cache
    assert pretrain.ensure_backbone(log=lambda m: None, progress=False) == path and built == [1]
    model = build_model(7, start="synth-face")
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
    assert build_model(7, start=str(out)).load_report.fraction == 1.0


def test_a_recipe_must_leave_training_images():
    with pytest.raises(ValueError, match="more than 2 images"):
        pretrain.build_backbone(people=3, images_per_person=2, epochs=1, log=lambda m: None, progress=False)


def test_a_truncated_cached_backbone_is_named_and_rebuilt(cache, monkeypatch, capsys):
    path = pretrain.backbone_path()
    path.parent.mkdir(parents=True)
    torch.save(tiny_build(), path)
    path.write_bytes(path.read_bytes()[:2000])  # cut short, as a full disk or a killed build leaves it
    with pytest.raises(PretrainedWeightsError, match=f"the synth-face backbone {path} cannot be read"):
        build_model(7, start="synth-face")
    monkeypatch.setattr(pretrain, "build_backbone", lambda **kw: tiny_build())
    assert main(["pretrain", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already built" not in out and "is damaged" in out and "building it again" in out
    assert pretrain.backbone_problem(path) is None
    assert build_model(7, start="synth-face").load_report.fraction == 1.0
    assert main(["pretrain", "--no-progress"]) == 0
    assert "already built" in capsys.readouterr().out
