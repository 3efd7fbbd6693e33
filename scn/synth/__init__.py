"""The built-in expression benchmark: FACS-driven synthetic faces with known ground truth.

    from scn.synth import generate_dataset, default_dataset, SynthConfig
    generate_dataset("data/synth", train=3000, test=750, noise=0.1)   # RAF-DB layout
    default_dataset()                                                 # cached built-in copy

See scn/synth/dataset.py for the layout, expressions.py for the action units and prototypes.
"""
from scn.synth.cache import default_dataset
from scn.synth.config import SynthConfig
from scn.synth.dataset import generate_dataset
from scn.synth.sheet import contact_sheet

__all__ = ["SynthConfig", "contact_sheet", "default_dataset", "generate_dataset"]
