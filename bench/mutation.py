"""Mutation testing of SCN's core: how many small deliberate breaks of the code the fast tests catch.

    python -m bench.mutation                       # about half an hour on one core
    python -m bench.mutation --keep DIR            # the same, keeping mutmut's folder
    python -m bench.mutation --again DIR           # after adding tests: only DIR's survivors again

mutmut (requirements-dev.txt) writes a changed copy of every function it mutates and runs the fast
tests that call that function against each change ("mutant"): a failing test kills it, a mutant
every test passes survives. setup.cfg's [mutmut] section names the files it mutates and those tests.
This script copies the project into a scratch folder (mutmut writes its `mutants/` folder beside the
code), runs mutmut there on one process over MUTATED (all of losses, relabel, collapse and labels;
of scn/train.py only the training step and the relabel step), and writes per module: killed,
survived, timeout, the survivors with their diffs, the equivalent mutants (EQUIVALENT: changes no
test could catch because they do not change behaviour) with a reason each, and
score = killed / (killed + survived), equivalents excluded.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results_io import write_results

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("scn", "tests", "setup.cfg", "pytest.ini")
STEP_FUNCTIONS = ("x_step_losses", "xǁTrainerǁ_train_step", "xǁTrainerǁrelabels_in", "xǁTrainerǁ_relabel",
                  "xǁTrainerǁ_flush_relabels")
MUTATED = {
    "scn/losses.py": ["scn.losses.*"],
    "scn/relabel.py": ["scn.relabel.*"],
    "scn/collapse.py": ["scn.collapse.*"],
    "scn/labels.py": ["scn.labels.*"],
    "scn/train.py": [f"scn.train.{function}__mutmut_*" for function in STEP_FUNCTIONS],
}
# Mutants that change no behaviour, found by reading each survivor's diff (`mutmut show NAME`).
INTEGER_LABELS = "the trainer passes the events' new labels as Python ints, which np.asarray makes integers anyway"
STORED_LONG = ("`current` comes from state_dict() as an int64 tensor (or ints), which as_tensor keeps int64")
FRESH_GRADIENTS = ("no parameter gets a gradient in one step and none in a later one (a warm-up only switches "
                   "the head on), so zeroed instead of freed gradients give Adam the same steps")
SEEN_PROMOTED = "torch.stack promotes the float32 image count to float64, exactly (it is a whole number)"
EQUIVALENT = {
    "scn.collapse.x_dominant_prediction__mutmut_5": "the counts are integers: their shares divide to the same floats",
    "scn.collapse.x_dominant_prediction__mutmut_7": "the counts are integers: their shares divide to the same floats",
    "scn.collapse.x_alpha_collapse__mutmut_21": ("a mean equal to ALPHA_LOW has returned None above, so < and <= "
                                                 "pick the same side"),
    "scn.collapse.x_relabel_one_class__mutmut_3": INTEGER_LABELS,
    "scn.collapse.x_relabel_one_class__mutmut_5": INTEGER_LABELS,
    "scn.collapse.x_relabel_one_class__mutmut_11": ("zeros padded after the largest label change neither the "
                                                    "counts' argmax nor its share"),
    "scn.collapse.x_past_half__mutmut_2": "for whole epochs, epoch > n // 2 and epoch > n / 2 agree",
    "scn.labels.xǁLabelStateǁfrom_state_dict__mutmut_7": STORED_LONG,
    "scn.labels.xǁLabelStateǁfrom_state_dict__mutmut_9": STORED_LONG,
    "scn.train.xǁTrainerǁ_train_step__mutmut_45": FRESH_GRADIENTS,
    "scn.train.xǁTrainerǁ_train_step__mutmut_46": FRESH_GRADIENTS,
    "scn.train.xǁTrainerǁ_relabel__mutmut_33": "the gathered change flag is 0 or 1: > 0.5 and >= 0.5 agree",
    "scn.train.xǁTrainerǁ_train_step__mutmut_112": SEEN_PROMOTED,
    "scn.train.xǁTrainerǁ_train_step__mutmut_116": SEEN_PROMOTED,
    "scn.losses.x_high_group_size__mutmut_12": ("beta < 1 (the config refuses more) keeps floor(beta * B) at most "
                                                "B - 1, so the upper clamp never binds for the batches of 2 or "
                                                "more its callers pass"),
}


def scratch_copy(work: Path, *, names=COPIED) -> Path:
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                            dirs_exist_ok=True)
        else:
            shutil.copy2(source, work / name)
    return work


def mutmut(*args: str, work: Path, capture: bool = False) -> subprocess.CompletedProcess:
    program = Path(sys.executable).with_name("mutmut")
    env = os.environ | {"OMP_NUM_THREADS": "1", "SCN_STUDIO_CACHE": str(work / "cache")}
    return subprocess.run([str(program), *args], cwd=work, env=env, check=not capture, text=True,
                          capture_output=capture)


def statuses(work: Path) -> dict:
    """Each mutant of MUTATED and mutmut's verdict on it, by module."""
    from fnmatch import fnmatch

    from mutmut.stats import status_by_exit_code

    found = {}
    for module, patterns in MUTATED.items():
        codes = json.loads((work / "mutants" / f"{module}.meta").read_text())["exit_code_by_key"]
        found[module] = {name: status_by_exit_code[code] for name, code in sorted(codes.items())
                         if any(fnmatch(name, pattern) for pattern in patterns)}
    return found


def diff(name: str, *, work: Path) -> str:
    """The mutant's change as the lines it removes and adds."""
    shown = mutmut("show", name, work=work, capture=True).stdout.splitlines()
    return "\n".join(line for line in shown if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def summarize(found: dict, *, work: Path) -> dict:
    modules = {}
    for module, verdicts in found.items():
        # A mutant the tests kill is not equivalent, whatever the list says (its numbering may have moved).
        equivalent = {name: EQUIVALENT[name] for name, status in verdicts.items()
                      if name in EQUIVALENT and status == "survived"}
        counted = {name: status for name, status in verdicts.items() if name not in equivalent}
        killed = sum(status == "killed" for status in counted.values())
        survivors = sorted(name for name, status in counted.items() if status == "survived")
        others = sorted((name, status) for name, status in counted.items()
                        if status not in ("killed", "survived", "timeout"))
        modules[module] = {
            "mutants": len(verdicts), "killed": killed, "survived": len(survivors),
            "timeout": sum(status == "timeout" for status in counted.values()),
            "score": round(killed / max(killed + len(survivors), 1), 4),
            "equivalent": [{"mutant": name, "reason": reason} for name, reason in sorted(equivalent.items())],
            "survivors": [{"mutant": name, "diff": diff(name, work=work)} for name in survivors],
            "other": [{"mutant": name, "status": status} for name, status in others],
        }
    return modules


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "mutation.json")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (for `mutmut show`, "
                                                  "`mutmut browse` there); default: a temporary folder")
    parser.add_argument("--again", type=Path, help="a folder an earlier --keep run left: copy the current "
                                                   "tests into it and test only its survivors again")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = args.again or args.keep or Path(tempfile.mkdtemp(prefix="scn-mutation-"))
    try:
        if args.again:
            scratch_copy(work, names=("tests",))
            patterns = [name for verdicts in statuses(work).values() for name, status in verdicts.items()
                        if status == "survived"]
        else:
            scratch_copy(work)
            patterns = [pattern for module_patterns in MUTATED.values() for pattern in module_patterns]
        if patterns:
            mutmut("run", "--max-children", str(args.max_children), *patterns, work=work)
        modules = summarize(statuses(work), work=work)
    finally:
        if args.keep is None and args.again is None:
            shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    report = {"mutmut": version("mutmut"), "max_children": args.max_children,
              "minutes": round((time.perf_counter() - started) / 60, 1), "modules": modules,
              "mutated": "every line of MUTATED the tests execute (setup.cfg: mutate_only_covered_lines)",
              "tests": "setup.cfg [mutmut] pytest_add_cli_args_test_selection, not slow"}
    for module, row in modules.items():
        print(f"{module:18s} {row['killed']:4d} killed {row['survived']:4d} survived {row['timeout']:3d} timeout "
              f"{len(row['equivalent']):3d} equivalent  score {row['score']:.1%}")
    write_results(args.json, report, module="bench.mutation", argv=argv)
    return report


if __name__ == "__main__":
    main()
