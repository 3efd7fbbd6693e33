from scn.review import corrected_label_file
from scn.store import RunReader


def test_corrected_label_file_keeps_relabels_and_undoes_reverted_ones(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    latest = events.groupby("idx").last()
    kept, reverted = latest.iloc[0], latest.iloc[1]
    reader.write_review(event_id=int(reverted["id"]), decision="revert")
    reader.write_review(event_id=int(kept["id"]), decision="accept")
    lines = corrected_label_file(reader).splitlines()
    samples, tests = reader.samples("train"), reader.samples("test")
    assert len(lines) == len(samples) + len(tests)
    by_name = dict(line.split() for line in lines)
    name = samples["name"]
    assert by_name[name[kept.name]] == str(int(kept["new"]) + 1)
    assert by_name[name[reverted.name]] == str(int(reader.original_labels()[reverted.name]) + 1)
    untouched = next(i for i in range(len(samples)) if i not in latest.index)
    assert by_name[name[untouched]] == str(int(samples["label"][untouched]) + 1)
    assert by_name[tests["name"][0]] == str(int(tests["label"][0]) + 1)
