"""docs/results.md is what `python -m bench.report` writes, and no other page states a figure.

A figure is a number with a unit of measure: %, points, images/s, img/s, ms, s, seconds, min,
minutes, GB, MB, GiB, or a factor such as 3.4× (not a size such as 48×48). Fenced code blocks and
inline code are not read (commands, option values, version pins and the code's own constants appear
there).
"""
import re
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"\d[\d,]*(?:\.\d+)?(?:×(?!\d)|\s?(?:%|points?\b|images/s|img/s|ms\b|s\b|seconds?\b"
                    r"|min\b|minutes?\b|GB\b|MB\b|GiB\b))")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(markdown: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def hand_written_pages() -> list:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [page for page in pages if report.GENERATED_MARK not in page.read_text()]


def test_the_committed_results_page_is_what_the_report_writes():
    assert report.PAGE.read_text() == report.render(), "run `python -m bench.report` and commit docs/results.md"


def test_check_fails_on_a_page_that_differs_and_passes_on_a_fresh_one(tmp_path, capsys):
    page = tmp_path / "results.md"
    assert report.main(["--out", str(page)]) == 0
    assert report.main(["--check", "--out", str(page)]) == 0
    page.write_text(page.read_text().replace("Results", "Results as typed", 1))
    assert report.main(["--check", "--out", str(page)]) == 1
    assert "error:" in capsys.readouterr().err


def test_every_section_names_its_start_and_its_command():
    for section in report.SECTIONS:
        text = section()
        assert text.startswith("## "), section.__name__
        assert "**Start:** " in text, section.__name__
        assert "```bash\npython -m bench." in text or "```bash\nbash bench/" in text, section.__name__


@pytest.mark.parametrize("text, figures", [
    ("SCN ends 2.5 points ahead at 55.9% in 330 ms", ["2.5 points", "55.9%", "330 ms"]),
    ("it builds at 1,885 images/s, 10.95 GB, in 7 min; 3.4× faster", ["1,885 images/s", "10.95 GB", "7 min", "3.4×"]),
    ("64 px, 12 epochs, 384 people × 12 images, a 48×48 face, Python 3.11, 3 seeds", []),
    ("run `pip install torch==2.14.1` then\n```bash\npython -m pytest  # 8 minutes\n```\n", []),
])
def test_what_counts_as_a_figure(text, figures):
    assert FIGURE.findall(prose(text)) == figures


def test_no_figure_outside_the_generated_pages():
    stated = {page.relative_to(ROOT).as_posix(): FIGURE.findall(prose(page.read_text()))
              for page in hand_written_pages()}
    assert {page: found for page, found in stated.items() if found} == {}, \
        "figures belong in docs/results.md, written by `python -m bench.report`"
