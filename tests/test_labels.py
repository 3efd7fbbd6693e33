import pytest
import torch

from scn.labels import LabelState, RelabelEvent


def event(index, old, new, *, epoch=3, step=0):
    return RelabelEvent(epoch=epoch, step=step, index=index, old=old, new=new, p_max=0.9,
                        p_given=0.1, alpha=0.2, group="low")


def test_apply_keeps_original_and_history():
    labels = LabelState([0, 1, 2])
    labels.apply([event(1, 1, 4)])
    labels.apply([event(1, 4, 0, epoch=4)])
    assert labels.original.tolist() == [0, 1, 2]
    assert labels.current.tolist() == [0, 0, 2]
    assert [e.new for e in labels.history] == [4, 0]
    assert labels.changed().tolist() == [False, True, False]


def test_event_with_stale_old_label_is_refused():
    labels = LabelState([0, 1, 2])
    with pytest.raises(ValueError, match="current label is 1"):
        labels.apply([event(1, 3, 4)])


def test_state_dict_round_trip_survives_torch_save(tmp_path):
    labels = LabelState([0, 1, 2, 3])
    labels.apply([event(2, 2, 5), event(0, 0, 1)])
    torch.save(labels.state_dict(), tmp_path / "labels.pt")
    restored = LabelState.from_state_dict(torch.load(tmp_path / "labels.pt", weights_only=True))
    assert restored.current.tolist() == [1, 1, 5, 3]
    assert restored.original.tolist() == [0, 1, 2, 3]
    assert restored.history == labels.history


def test_labels_are_held_as_int64_whatever_they_come_as():
    """Labels index class tables and compare with relabels' int64 labels: a dataset's int32 or uint8
    labels are widened."""
    labels = LabelState(torch.tensor([0, 1, 6], dtype=torch.uint8))
    assert labels.original.dtype == labels.current.dtype == torch.long
