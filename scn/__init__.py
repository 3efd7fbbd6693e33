"""SCN Studio: Self-Cure Network (Wang et al., CVPR 2020) for facial expression recognition.

The library never imports streamlit: everything the app shows can be computed from a run folder
and from the command line (`python -m scn --help`).
"""
__version__ = "0.1.0"
