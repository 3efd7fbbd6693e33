import io

from PIL import Image

from scn import thumbnails


def test_image_path_follows_the_layout(tmp_path):
    assert thumbnails.image_path(data=tmp_path, format="rafdb", name="train_00007.jpg") == \
        tmp_path / "Image" / "aligned" / "train_00007_aligned.jpg"
    assert thumbnails.image_path(data=tmp_path, format="imagefolder", name="train/happy/a.png") == \
        tmp_path / "train" / "happy" / "a.png"


def test_thumbnail_shrinks_and_tolerates_missing_files(tmp_path):
    Image.new("RGB", (200, 100), (255, 0, 0)).save(tmp_path / "big.png")
    jpeg = thumbnails.thumbnail(tmp_path / "big.png", size=50)
    with Image.open(io.BytesIO(jpeg)) as small:
        assert small.size == (50, 25) and small.format == "JPEG"
    assert thumbnails.thumbnail(tmp_path / "gone.jpg") is None
    assert thumbnails.data_uri(jpeg).startswith("data:image/jpeg;base64,")
    assert thumbnails.data_uri(None) is None
