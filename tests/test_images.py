import io

from PIL import Image

from scn import images


def test_check_dataset_accepts_what_the_trainer_reads(tiny_rafdb, tmp_path):
    assert images.check_dataset(tiny_rafdb, format="rafdb") is None
    for split in ("train", "test"):
        for label in ("happy", "sad"):
            folder = tmp_path / "faces" / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(folder / "a.png")
    assert images.check_dataset(tmp_path / "faces", format="imagefolder") is None


def test_check_dataset_says_what_is_wrong(tiny_rafdb, tmp_path):
    assert "not found" in images.check_dataset(tmp_path / "nowhere", format="rafdb")
    assert images.check_dataset("  ", format="rafdb") == "Enter the dataset folder."
    (tmp_path / "empty").mkdir()
    assert "list_patition_label.txt" in images.check_dataset(tmp_path / "empty", format="rafdb")
    assert "class folders" in images.check_dataset(tmp_path / "empty", format="imagefolder")
    (tiny_rafdb / "Image" / "aligned" / "train_00001_aligned.jpg").unlink()
    assert "train images are missing" in images.check_dataset(tiny_rafdb, format="rafdb")


def test_image_path_follows_the_layout(tmp_path):
    assert images.image_path(data=tmp_path, format="rafdb", name="train_00007.jpg") == \
        tmp_path / "Image" / "aligned" / "train_00007_aligned.jpg"
    assert images.image_path(data=tmp_path, format="imagefolder", name="train/happy/a.png") == \
        tmp_path / "train" / "happy" / "a.png"


def test_thumbnail_shrinks_and_tolerates_missing_files(tmp_path):
    Image.new("RGB", (200, 100), (255, 0, 0)).save(tmp_path / "big.png")
    jpeg = images.thumbnail(tmp_path / "big.png", size=50)
    with Image.open(io.BytesIO(jpeg)) as small:
        assert small.size == (50, 25) and small.format == "JPEG"
    assert images.thumbnail(tmp_path / "gone.jpg") is None
    assert images.data_uri(jpeg).startswith("data:image/jpeg;base64,")
    assert images.data_uri(None) is None
