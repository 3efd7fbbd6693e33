import pytest
import torch
import torchvision

from scn.model import SCN, PretrainedWeightsError, load_pretrained, map_backbone_keys


def test_forward_returns_alpha_and_alpha_scaled_logits():
    model = SCN(7).eval()
    x = torch.randn(3, 3, 64, 64)
    alpha, scaled = model(x)
    raw_alpha, logits = model.heads(x)
    assert alpha.shape == (3, 1) and scaled.shape == (3, 7)
    assert ((alpha > 0) & (alpha < 1)).all()
    assert torch.allclose(scaled, raw_alpha * logits)


def test_baseline_has_no_alpha_head():
    model = SCN(8, method="baseline").eval()
    alpha, logits = model(torch.randn(2, 3, 64, 64))
    assert model.alpha is None
    assert torch.equal(alpha, torch.ones(2, 1)) and logits.shape == (2, 8)


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
    model = SCN(7, pretrained=str(tmp_path / "ijba_res18_naive.pth.tar"))
    report = model.load_report
    assert report.fraction == 1.0 and not report.missing
    expected = checkpoint["state_dict"]["module.layer4.1.conv2.weight"]
    assert torch.equal(model.features[7][1].conv2.weight, expected)


def test_plain_torchvision_state_dict_loads(tmp_path):
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r18.pth")
    model = SCN(7, pretrained=str(tmp_path / "r18.pth"))
    assert torch.equal(model.features[0].weight, resnet.conv1.weight)


def test_too_few_matching_tensors_fail_loudly(tmp_path):
    state = official_msceleb_layout()["state_dict"]
    partial = {k: v for k, v in state.items() if "layer3" not in k and "layer4" not in k}
    torch.save({"state_dict": partial}, tmp_path / "partial.pth")
    with pytest.raises(PretrainedWeightsError, match=r"matched \d+ of 120 backbone tensors"):
        SCN(7, pretrained=str(tmp_path / "partial.pth"))


def test_wrong_shapes_do_not_count_as_matches(tmp_path):
    resnet = torchvision.models.resnet50(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(PretrainedWeightsError):
        SCN(7, pretrained=str(tmp_path / "r50.pth"))


def test_missing_and_non_torch_files_give_clear_errors(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="not found"):
        SCN(7, pretrained=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="not a readable PyTorch weights file"):
        SCN(7, pretrained=str(tmp_path / "junk.pth"))


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="not downloaded at run time"):
        load_pretrained(SCN(7), "imagenet")


def test_map_backbone_keys_drops_heads():
    mapped = map_backbone_keys({"module.conv1.weight": torch.zeros(1), "module.fc.weight": torch.zeros(1),
                                "alpha.0.weight": torch.zeros(1), "features.4.0.bn1.bias": torch.zeros(1)})
    assert set(mapped) == {"features.0.weight", "features.4.0.bn1.bias"}
