"""Label state of a training set: original labels, current labels, and every relabel event.

The official code overwrites labels in place and forgets them, so nobody can measure whether a
relabel was right and resuming loses them; this keeps both and round-trips through checkpoints.
"""
from dataclasses import asdict, dataclass

import torch

EVENT_FIELDS = ("epoch", "step", "index", "old", "new", "p_max", "p_given", "alpha", "group", "kind")


@dataclass(frozen=True)
class RelabelEvent:
    epoch: int
    step: int
    index: int
    old: int
    new: int
    p_max: float
    p_given: float
    alpha: float
    group: str
    # "scn": the relabel rule; "review": a reviewed label applied on resume (no probabilities).
    # Checkpoints written before kinds existed hold SCN events only, hence the default.
    kind: str = "scn"


class LabelState:
    """Current labels of every training sample plus the history that produced them."""

    def __init__(self, original_labels):
        self.original = torch.as_tensor(original_labels, dtype=torch.long).clone()
        self.current = self.original.clone()
        self.history: list[RelabelEvent] = []

    def __len__(self) -> int:
        return len(self.original)

    def apply(self, events) -> None:
        """Record events and change current labels; later batches see the new labels."""
        for event in events:
            if int(self.current[event.index]) != event.old:
                raise ValueError(
                    f"relabel event for sample {event.index} expects label {event.old}, "
                    f"but its current label is {int(self.current[event.index])}"
                )
            self.current[event.index] = event.new
            self.history.append(event)

    def changed(self) -> torch.Tensor:
        """Mask of samples whose current label differs from the original one."""
        return self.current != self.original

    def state_dict(self) -> dict:
        return {
            "original": self.original.clone(),
            "current": self.current.clone(),
            "history": [asdict(e) for e in self.history],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "LabelState":
        labels = cls(state["original"])
        labels.current = torch.as_tensor(state["current"], dtype=torch.long).clone()
        labels.history = [RelabelEvent(**e) for e in state["history"]]
        return labels
