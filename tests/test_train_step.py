"""SCN's training step and relabel step (scn.train), one batch at a time on a real trainer.

Each test builds a trainer on 8 tiny training images (the whole set is one batch) with random
weights, seeded, so trainers that differ in one option start from the same weights and see the same
augmented batch: comparing their steps isolates that option. Where a test needs to know what the
relabel rule will see, it zeroes the classifier's weights, so every image gets the classifier's
bias as logits and every sample's prediction is the class that bias favours.
"""
import logging
from dataclasses import dataclass, replace

import pytest
import torch

from scn import augment, distributed
from scn.config import make_config
from scn.distributed import Ranks
from scn.losses import high_group_size, rank_regularization
from scn.train import EpochRecord, StopSignal, Trainer, step_losses
from tests.helpers import write_rafdb

BATCH = 8
FAVOURED = 6  # the class the zeroed classifier predicts for every image (see predict_one_class)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # Labels i % 7 for i = 0..7: [0, 1, 2, 3, 4, 5, 6, 0], so one sample already has FAVOURED.
    return write_rafdb(tmp_path_factory.mktemp("step") / "rafdb", train=BATCH, test=2, size=32)


@dataclass(frozen=True)
class CheckedRanks(Ranks):
    """A single process whose gather holds its callers to the contract torchrun's processes need:
    `total` is the size of the global batch being gathered."""

    def gather(self, tensor, *, total):
        assert len(tensor) == total
        return super().gather(tensor, total=total)


@pytest.fixture
def build(data, tmp_path):
    """A trainer with the given options; the same seed gives every one the same initial weights."""
    def trainer(**overrides) -> Trainer:
        config = make_config(**({"data": str(data), "pretrained": "none", "epochs": 3, "batch_size": BATCH,
                                 "image_size": 32, "val_fraction": 0.0, "precision": "fp32", "seed": 0, "threads": 1}
                                | overrides))
        return Trainer(config, run_dir=tmp_path, writer=distributed.SilentWriter(),
                       log=logging.getLogger("tests.train_step"), stop=StopSignal(), checkpoint=None,
                       progress=False, ranks=CheckedRanks())
    # threads=1 sets the whole process's torch threads: the tests after these get theirs back.
    threads = torch.get_num_threads()
    yield trainer
    torch.set_num_threads(threads)


def step(trainer: Trainer, *, epoch: int, number: int = 0) -> torch.Tensor:
    """Training step `number` of `epoch` on the whole training set as one batch, with its relabels
    flushed into the label history; returns the step's [wce sum, rr sum, correct, seen]."""
    trainer.record = EpochRecord.empty(len(trainer.train_split))
    positions = torch.arange(BATCH)
    sums = trainer._train_step(epoch, number, positions, trainer.cache[positions],
                               torch.Generator().manual_seed(0))
    trainer._flush_relabels()
    return sums


def predict_one_class(trainer: Trainer) -> Trainer:
    with torch.no_grad():
        trainer.model.fc.weight.zero_()
        trainer.model.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(FAVOURED), 7) * 3.0)
    return trainer


def equal_alphas(trainer: Trainer, *, bias: float) -> Trainer:
    """Every image gets alpha = sigmoid(bias): a batch whose groups have no gap."""
    with torch.no_grad():
        trainer.model.alpha[0].weight.zero_()
        trainer.model.alpha[0].bias.fill_(bias)
    return trainer


def alpha_head_grad(trainer: Trainer) -> torch.Tensor:
    return trainer.model.alpha[0].weight.grad


def changed(trainer: Trainer) -> torch.Tensor:
    return trainer.labels.changed()


def test_a_step_records_every_sample_and_returns_the_batch_sums(build):
    trainer = build()
    loss_wce, loss_rr, correct, seen = step(trainer, epoch=1).tolist()
    record = trainer.record
    assert seen == BATCH
    assert record.label.tolist() == trainer.train_split.labels.tolist()
    # The loss is the batch's cross-entropy on the probabilities the relabel rule reads.
    assert loss_wce == pytest.approx(-torch.log(record.p_given).sum().item(), rel=1e-4)
    assert correct == (record.pred == record.label).sum().item()
    assert torch.all(record.p_max >= record.p_given) and bool(((record.alpha > 0) & (record.alpha < 1)).all())
    high, low = record.alpha[record.is_high], record.alpha[~record.is_high]
    assert len(high) == high_group_size(BATCH, beta=0.7) and high.min() >= low.max()
    assert loss_rr == pytest.approx(BATCH * rank_regularization(record.alpha, beta=0.7, margin=0.07).item(),
                                    abs=1e-5)


def test_scope_low_relabels_only_the_low_importance_group(build):
    """Every sample not labelled FAVOURED is over margin_2 = 0: scope "all" relabels each of them,
    scope "low" (the paper's) only those the attention head put in the low group."""
    low_scope = predict_one_class(build(relabel_epoch=1, margin_2=0.0, relabel_scope="low"))
    step(low_scope, epoch=1)
    wrong = low_scope.train_split.labels != FAVOURED
    low = ~low_scope.record.is_high
    assert changed(low_scope).tolist() == (wrong & low).tolist()
    assert {event.group for event in low_scope.labels.history} == {"low"}
    assert low_scope.record.pred.tolist() == [FAVOURED] * BATCH
    assert low_scope.labels.current[changed(low_scope)].eq(FAVOURED).all()
    # The labels the next batches are drawn with changed exactly as the history says.
    assert low_scope.current_labels.tolist() == low_scope.labels.current.tolist()

    every = predict_one_class(build(relabel_epoch=1, margin_2=0.0, relabel_scope="all"))
    step(every, epoch=1)
    assert changed(every).tolist() == wrong.tolist()
    assert (changed(every) & every.record.is_high).any()  # so scope "low" had high samples to refuse
    assert [event.group for event in every.labels.history] == [
        "high" if every.record.is_high[event.index] else "low" for event in every.labels.history]


def test_margin_2_is_the_relabel_threshold(build):
    """The rule relabels a sample when p_max - p_given exceeds margin_2, strictly."""
    probe = predict_one_class(build(relabel_epoch=1, margin_2=0.0, relabel_scope="all"))
    step(probe, epoch=1)
    lead = (probe.record.p_max - probe.record.p_given)[probe.train_split.labels != FAVOURED]
    threshold = float(lead.median())
    strict = predict_one_class(build(relabel_epoch=1, margin_2=threshold, relabel_scope="all"))
    step(strict, epoch=1, number=3)
    expected = (probe.record.p_max - probe.record.p_given > threshold) & (probe.train_split.labels != FAVOURED)
    assert 0 < expected.sum() < len(lead)
    assert changed(strict).tolist() == expected.tolist()
    events = {event.index: event for event in strict.labels.history}
    for index, event in events.items():
        assert (event.old, event.new, event.epoch, event.step) == (int(strict.train_split.labels[index]), FAVOURED,
                                                                   1, 3)
        assert event.kind == "scn"
        assert event.p_max == pytest.approx(float(strict.record.p_max[index]), abs=1e-6)
        assert event.p_given == pytest.approx(float(strict.record.p_given[index]), abs=1e-6)
        assert event.alpha == pytest.approx(float(strict.record.alpha[index]), abs=1e-6)


def test_relabeled_labels_are_what_the_next_step_trains_with(build):
    trainer = predict_one_class(build(relabel_epoch=1, margin_2=0.0, relabel_scope="all"))
    step(trainer, epoch=1)
    assert trainer.current_labels.tolist() == trainer.labels.current.tolist() == [FAVOURED] * BATCH
    step(trainer, epoch=2)
    assert trainer.record.label.tolist() == [FAVOURED] * BATCH


def test_relabeling_starts_at_relabel_epoch_after_the_warmup_and_the_gate(build):
    trainer = build(relabel_epoch=3)
    assert [trainer.relabels_in(epoch) for epoch in (1, 2, 3, 4)] == [False, False, True, True]
    trainer.config = replace(trainer.config, relabel_epoch=2, alpha_warmup_epochs=3)
    assert [trainer.relabels_in(epoch) for epoch in (2, 3, 4)] == [False, False, True]
    trainer.config = replace(trainer.config, alpha_warmup_epochs=0, relabel_min_val_accuracy=0.5)
    trainer.gate_accuracy = 0.49
    assert not trainer.relabels_in(5)
    trainer.gate_accuracy = 0.5
    assert trainer.relabels_in(5)
    trainer.config = replace(trainer.config, relabel=False)
    assert not trainer.relabels_in(5)


def test_no_relabels_before_relabel_epoch(build):
    trainer = predict_one_class(build(relabel_epoch=2, margin_2=0.0, relabel_scope="all"))
    step(trainer, epoch=1)
    assert not changed(trainer).any() and trainer.labels.history == []
    step(trainer, epoch=2)
    assert changed(trainer).any()


def test_the_rank_regularization_hinge_trains_the_attention_head(build):
    """margin_1 = 1 exceeds any gap between sigmoid outputs, so the hinge is positive: it must add
    its gradient to the attention head and nothing to the classifier."""
    with_rr, without_rr = build(margin_1=1.0), build(margin_1=1.0, rank_reg=False)
    sums_with, sums_without = step(with_rr, epoch=1), step(without_rr, epoch=1)
    hinge = rank_regularization(with_rr.record.alpha, beta=0.7, margin=1.0).item()
    assert hinge > 0 and sums_with[1].item() == pytest.approx(BATCH * hinge, rel=1e-5)
    assert sums_without[1].item() == 0.0
    # The epoch's hinge counts: one step with rank regularization, above 0, and its hinge.
    assert with_rr.record.rr_hinge.tolist() == [1.0, 1.0, pytest.approx(hinge, rel=1e-5)]
    assert without_rr.record.rr_hinge.tolist() == [0.0, 0.0, 0.0]
    assert sums_with[0].item() == pytest.approx(sums_without[0].item(), rel=1e-6)
    assert torch.allclose(with_rr.model.fc.weight.grad, without_rr.model.fc.weight.grad)
    assert not torch.allclose(alpha_head_grad(with_rr), alpha_head_grad(without_rr), atol=1e-7)


def test_a_rank_regularization_step_widens_the_gap_between_the_groups(build):
    """Only the attention head trains (the classifier and trunk are frozen, and cross-entropy ignores
    alpha): one step on the hinge alone must raise the high group's mean alpha over the low one's,
    so the next step on the same batch finds a smaller hinge."""
    trainer = build(margin_1=1.0, attention=False)
    for parameter in [*trainer.model.features.parameters(), *trainer.model.fc.parameters()]:
        parameter.requires_grad_(False)
    before = step(trainer, epoch=1)[1].item()
    after = step(trainer, epoch=1)[1].item()
    assert after < before


def test_a_bfloat16_step_scores_its_loss_in_float32(build):
    trainer = build(precision="bf16")
    loss_wce = step(trainer, epoch=1)[0].item()
    assert loss_wce == pytest.approx(-torch.log(trainer.record.p_given).sum().item(), rel=1e-3)


def test_a_closed_hinge_adds_no_gradient(build):
    """margin_1 = 0 with distinct alphas: the high group already leads, the hinge is 0 and flat."""
    with_rr, without_rr = build(margin_1=0.0), build(margin_1=0.0, rank_reg=False)
    assert step(with_rr, epoch=1)[1].item() == 0.0
    assert with_rr.record.rr_hinge.tolist() == [1.0, 0.0, 0.0]
    step(without_rr, epoch=1)
    assert torch.allclose(alpha_head_grad(with_rr), alpha_head_grad(without_rr))


def test_margin_1_is_the_hinge_s_margin(build):
    """With equal alphas the groups have no gap, so the hinge is margin_1 itself."""
    for margin in (0.07, 0.15, 0.6):
        trainer = equal_alphas(build(margin_1=margin), bias=0.5)
        assert step(trainer, epoch=1)[1].item() == pytest.approx(BATCH * margin, rel=1e-5)


def test_alpha_normalize_removes_a_common_alpha_level_from_the_loss(build):
    """Equal alphas of 0.27: plain WCE trains on logits shrunk by 0.27 and pushes that level; with
    alpha_normalize every weight is 1, so the loss is plain cross-entropy and the level gets no
    gradient. (Rank regularization is off: its gradient is not the subject here.)"""
    def trained(**options):
        trainer = equal_alphas(build(rank_reg=False, **options), bias=-1.0)
        return trainer, step(trainer, epoch=1)[0].item()

    normalized, normalized_loss = trained(alpha_normalize=True)
    plain_wce, plain_wce_loss = trained()
    _, unweighted_loss = trained(attention=False)
    assert normalized_loss == pytest.approx(unweighted_loss, rel=1e-6)
    assert abs(plain_wce_loss - unweighted_loss) > 0.05
    assert abs(normalized.model.alpha[0].bias.grad.item()) < 1e-7
    assert abs(plain_wce.model.alpha[0].bias.grad.item()) > 1e-4


def test_alpha_normalize_keeps_the_ranking_in_the_loss(build):
    """Distinct alphas: normalised weights still differ per sample, so the loss is not plain
    cross-entropy and the head that ranks the samples is trained."""
    normalized = build(rank_reg=False, alpha_normalize=True)
    unweighted = build(rank_reg=False, attention=False)
    normalized_loss, unweighted_loss = step(normalized, epoch=1)[0].item(), step(unweighted, epoch=1)[0].item()
    assert normalized_loss != pytest.approx(unweighted_loss, rel=1e-4)
    assert alpha_head_grad(normalized).abs().sum() > 0 and alpha_head_grad(unweighted) is None


def test_the_warmup_trains_plain_cross_entropy_then_switches_the_head_on(build):
    options = dict(alpha_warmup_epochs=1, margin_1=1.0, relabel_epoch=1, margin_2=0.0, relabel_scope="all")
    warming = predict_one_class(build(**options))
    sums = step(warming, epoch=1)
    unweighted = predict_one_class(build(attention=False, rank_reg=False, relabel=False))
    assert sums[0].item() == pytest.approx(step(unweighted, epoch=1)[0].item(), rel=1e-6)
    assert sums[1].item() == 0.0 and alpha_head_grad(warming) is None
    assert not changed(warming).any()

    on = predict_one_class(build(**options))
    sums = step(on, epoch=2)
    assert sums[1].item() > 0 and alpha_head_grad(on).abs().sum() > 0
    assert changed(on).any()


def test_the_baseline_has_alpha_1_no_rank_regularization_and_no_relabels(build):
    baseline = predict_one_class(build(method="baseline", relabel_epoch=1, margin_2=0.0, relabel_scope="all",
                                       margin_1=1.0))
    sums = step(baseline, epoch=1)
    assert baseline.record.alpha.tolist() == [1.0] * BATCH
    assert sums[1].item() == 0.0 and not changed(baseline).any()
    assert sums[0].item() == pytest.approx(-torch.log(baseline.record.p_given).sum().item(), rel=1e-4)


def test_the_cpu_step_trains_on_the_batch_augmented_by_the_epoch_s_generator(build):
    """On the CPU the whole global batch is augmented with the epoch's generator (so a resumed run
    draws what an uninterrupted one drew), not with the GPU's augmentation."""
    trainer = build()
    seen = []
    heads = trainer.heads
    trainer.heads = lambda x: seen.append(x) or heads(x)
    step(trainer, epoch=1)
    images = trainer.cache[torch.arange(BATCH)]
    expected = augment.train_batch(images, generator=torch.Generator().manual_seed(0), mean=trainer.config.mean,
                                   std=trainer.config.std)
    assert torch.equal(seen[0], expected)


@dataclass(frozen=True)
class SimulatedRank(Ranks):
    """One process of `world` whose gather is answered from the whole batch's `batch_alpha`, where
    torchrun's processes would send their rows: the loss of each rank, in one process."""
    batch_alpha: torch.Tensor = None

    def gather(self, tensor, *, total):
        rows = self.share(total)
        return torch.cat([self.batch_alpha[:rows.start], tensor, self.batch_alpha[rows.stop:]])


def test_the_ranks_losses_average_to_the_global_batch_loss():
    """DDP averages the processes' gradients: each rank's loss is scaled so that their mean is the
    single-process loss of the global batch, and every rank sees the global batch's alphas (its
    mean for alpha_normalize, its groups for rank regularization)."""
    torch.manual_seed(0)
    alpha, logits, targets = torch.rand(7), torch.randn(7, 3), torch.randint(0, 3, (7,))
    config = make_config(data="unused", margin_1=0.9, alpha_normalize=True)
    single_wce, single_rr, _, _ = step_losses(alpha, logits, targets, config=config, epoch=1, ranks=Ranks(),
                                              total=7)
    wce, rr = [], []
    for rank in (0, 1):
        ranks = SimulatedRank(rank=rank, world=2, backend="simulated", batch_alpha=alpha)
        rows = ranks.share(7)
        loss_wce, loss_rr, _, alpha_all = step_losses(alpha[rows], logits[rows], targets[rows], config=config,
                                                      epoch=1, ranks=ranks, total=7)
        assert torch.equal(alpha_all, alpha)
        wce.append(loss_wce.item())
        rr.append(loss_rr.item())
    assert (wce[0] + wce[1]) / 2 == pytest.approx(single_wce.item(), rel=1e-6)
    assert rr[0] == rr[1] == pytest.approx(single_rr.item()) and rr[0] > 0


def test_the_step_losses_stay_on_the_model_s_device():
    """The meta device stands in for a GPU: every loss term, the zero of a run without rank
    regularization too, is on the device of the model's outputs."""
    alpha, logits = torch.rand(7, device="meta"), torch.randn(7, 3, device="meta")
    targets = torch.zeros(7, dtype=torch.long, device="meta")
    for rank_reg in (True, False):
        config = make_config(data="unused", rank_reg=rank_reg)
        terms = step_losses(alpha, logits, targets, config=config, epoch=1, ranks=Ranks(), total=7)
        assert {term.device.type for term in terms} == {"meta"}
