import pytest
import torch
import torchvision

from scn.config import DLIB_FACE, NO_START
from scn.model import PretrainedWeightsError
from scn.starts import backbone_for, build_model


def official_msceleb_layout() -> dict:
    """The official SCN pretrained file: DataParallel `module.` keys plus its own extra layers."""
    resnet = torchvision.models.resnet18(weights=None)
    state = {f"module.{k}": v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    state["module.feature.weight"] = torch.randn(256, 512)
    state["module.feature.bias"] = torch.randn(256)
    state["module.fc.weight"] = torch.randn(12000, 256)
    return {"epoch": 20, "state_dict": state}


def test_msceleb_layout_maps_every_backbone_tensor(tmp_path):
    checkpoint = official_msceleb_layout()
    torch.save(checkpoint, tmp_path / "ijba_res18_naive.pth.tar")
    model = build_model(7, start=str(tmp_path / "ijba_res18_naive.pth.tar"))
    report = model.load_report
    assert report.fraction == 1.0 and not report.missing
    expected = checkpoint["state_dict"]["module.layer4.1.conv2.weight"]
    assert torch.equal(model.features[7][1].conv2.weight, expected)


def test_plain_torchvision_state_dict_loads(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    model = build_model(7, start=str(tmp_path / "r18.pth"))
    assert torch.equal(model.features[0].weight, resnet.conv1.weight)


def test_too_few_matching_tensors_fail_loudly(tmp_path):
    state = official_msceleb_layout()["state_dict"]
    partial = {k: v for k, v in state.items() if "layer3" not in k and "layer4" not in k}
    torch.save({"state_dict": partial}, tmp_path / "partial.pth")
    with pytest.raises(PretrainedWeightsError, match=r"matched \d+ of 120 backbone tensors"):
        build_model(7, start=str(tmp_path / "partial.pth"))


def test_wrong_shapes_do_not_count_as_matches(tmp_path):
    resnet = torchvision.models.resnet50(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(PretrainedWeightsError):
        build_model(7, start=str(tmp_path / "r50.pth"))


def test_missing_and_non_torch_files_give_clear_errors(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="not found"):
        build_model(7, start=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="not a readable PyTorch weights file"):
        build_model(7, start=str(tmp_path / "junk.pth"))


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="not downloaded at run time"):
        build_model(7, start="imagenet")


def test_dlib_face_builds_dlib_s_network_with_its_weights_and_says_so():
    model = build_model(7, start=DLIB_FACE)
    assert model.backbone == "dlib-resnet" and model.fc.in_features == 256
    assert model.load_report.fraction == 1.0 and "dlib face-recognition ResNet" in model.load_report.source
    assert model.features.stem.weight.abs().sum() > 0 and not torch.equal(
        model.features.stem_affine.weight, torch.ones(32))


def test_a_resumed_run_gets_its_start_s_architecture_without_its_weights():
    model = build_model(7, start=DLIB_FACE, load_weights=False)
    assert model.backbone == "dlib-resnet" and model.load_report is None
    assert torch.equal(model.features.stem_affine.weight, torch.ones(32))


def test_random_weights_and_files_are_resnet18():
    assert build_model(7, start=NO_START).load_report is None
    assert backbone_for(None) == backbone_for("weights.pth") == "resnet18"


def test_a_missing_dlib_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(PretrainedWeightsError, match="face-recognition-models"):
        build_model(7, start=DLIB_FACE)
