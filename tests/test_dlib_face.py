import numpy as np
import pytest
import torch

from scn import dlib_face
from scn.dlib_face import DlibFaceNet, DlibWeightsError, load_dlib_weights


@pytest.fixture(scope="module")
def net():
    model = DlibFaceNet()
    load_dlib_weights(model)
    return model.eval()


def chip_batch(chips) -> torch.Tensor:
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(dlib_face.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(dlib_face.STD).view(1, 3, 1, 1)
    return (x - mean) / std


def test_the_port_gives_dlib_s_own_face_descriptors(net, grace_hopper):
    dlib = pytest.importorskip("dlib")
    chips = [np.asarray(grace_hopper.convert("RGB").resize((150, 150))),
             np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)]
    recognizer = dlib.face_recognition_model_v1(str(dlib_face.weights_path()))
    expected = np.array([recognizer.compute_face_descriptor(chip) for chip in chips])
    with torch.no_grad():
        ours = net.descriptor(chip_batch(chips)).numpy()
    assert np.abs(ours - expected).max() < 1e-4


def test_features_are_pooled_to_256_at_every_trainable_size(net):
    with torch.no_grad():
        for size in (112, 150, 224):
            assert net(torch.zeros(1, 3, size, size)).shape == (1, 256, 1, 1)


def test_cam_layer_keeps_a_map_at_112_px(net):
    seen = []
    handle = net.cam_layer.register_forward_hook(lambda m, i, out: seen.append(out.shape))
    with torch.no_grad():
        net(torch.zeros(1, 3, 112, 112))
    handle.remove()
    assert seen == [(1, 128, 6, 6)]


def test_tensors_of_different_shapes_add_as_dlib_does():
    branch = torch.ones(1, 4, 3, 3)
    shortcut = torch.full((1, 2, 4, 4), 10.0)
    total = dlib_face._pad_add(branch, shortcut)
    assert total.shape == (1, 4, 4, 4)
    assert total[0, 0, 0, 0] == 11 and total[0, 3, 0, 0] == 1 and total[0, 0, 3, 3] == 10
    assert total[0, 3, 3, 3] == 0


def test_a_truncated_file_and_a_file_of_another_network_are_refused(tmp_path):
    data = dlib_face.weights_path().read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibWeightsError, match="cut.dat is truncated"):
        load_dlib_weights(DlibFaceNet(), tmp_path / "cut.dat")
    # One convolution fewer: the same format, another network.
    first = data.index(bytes([1, 5]) + b"con_4")
    (tmp_path / "other.dat").write_bytes(data[:first] + b"x" + data[first + 1:])
    with pytest.raises(DlibWeightsError, match="28 convolutions, 29 affine layers"):
        load_dlib_weights(DlibFaceNet(), tmp_path / "other.dat")
