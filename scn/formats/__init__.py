"""Dataset formats whose images are not one plain file per sample: FER2013 and FERPlus keep pixels
in a csv, AffectNet crops a face box out of each photo. Each module lists a dataset folder as
scn.data.list_splits does, with sources (scn.formats.sources) in place of image paths."""

FORMATS = ("rafdb", "imagefolder", "fer2013", "ferplus", "affectnet")
