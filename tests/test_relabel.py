import torch

from scn.relabel import relabel

PROBS = torch.tensor([
    [0.70, 0.20, 0.10],  # given 1: margin 0.50 → relabel to 0
    [0.40, 0.35, 0.25],  # given 1: margin 0.05 → keep
    [0.10, 0.10, 0.80],  # given 2: already argmax → keep
    [0.15, 0.80, 0.05],  # given 0: margin 0.65 → relabel to 1
])
LABELS = torch.tensor([1, 1, 2, 0])


def test_scope_all_relabels_every_sample_over_the_margin():
    decision = relabel(PROBS, LABELS, margin=0.2, eligible=torch.ones(4, dtype=torch.bool))
    assert decision.positions.tolist() == [0, 3]
    assert decision.new_labels.tolist() == [0, 1]
    assert torch.allclose(decision.p_max, torch.tensor([0.70, 0.80]))
    assert torch.allclose(decision.p_given, torch.tensor([0.20, 0.15]))


def test_scope_low_only_touches_eligible_samples():
    low = torch.tensor([False, True, True, True])
    decision = relabel(PROBS, LABELS, margin=0.2, eligible=low)
    assert decision.positions.tolist() == [3]


def test_margin_is_strict():
    probs = torch.tensor([[0.75, 0.25]])  # difference exactly 0.5 in binary floating point
    labels, eligible = torch.tensor([1]), torch.tensor([True])
    assert relabel(probs, labels, margin=0.5, eligible=eligible).positions.numel() == 0
    assert relabel(probs, labels, margin=0.49, eligible=eligible).positions.tolist() == [0]


def test_nothing_eligible_changes_nothing():
    decision = relabel(PROBS, LABELS, margin=0.0, eligible=torch.zeros(4, dtype=torch.bool))
    assert decision.positions.numel() == 0


def test_rows_give_the_decision_for_every_row_without_data_dependent_shapes():
    from scn.relabel import relabel_rows

    change, new, p_max, p_given = relabel_rows(PROBS, LABELS, margin=0.2,
                                               eligible=torch.tensor([True, True, True, False]))
    assert change.tolist() == [True, False, False, False]
    assert new.tolist() == [0, 0, 2, 1] and p_max.shape == p_given.shape == (4,)


def test_labels_and_eligibility_move_to_the_device_of_the_probabilities():
    """The official code crashes when the labels live on another device than the model's output; the
    meta device stands in for a GPU (its tensors have no data, only a device)."""
    from scn.relabel import relabel_rows

    change, new, p_max, p_given = relabel_rows(PROBS.to("meta"), LABELS, margin=0.2,
                                               eligible=torch.ones(4, dtype=torch.bool))
    assert {t.device.type for t in (change, new, p_max, p_given)} == {"meta"}
