"""Every knob of ``birdd distill`` in one frozen object (recorded in the student's manifest)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.recipe import HeadParams, Overridable, Recipe


@dataclass(frozen=True)
class TeacherParams:
    """How the teacher's window scores become the student's targets."""

    hop_s: float = 1.0
    """distance between the starts of the teacher's windows (seconds): the student's real windows and
    backgrounds are drawn from these windows, so a finer grid gives more distinct training windows"""
    neighbours: int = 3
    """a window's target is taken from the mean of its teacher logits and those of this many windows on each
    side of the grid (an ensemble of the teacher at offsets of ``hop_s``; fewer at a file's ends; chosen by
    cross-validation, docs/accuracy.md); 0: the window's own"""
    temperature: float = 1.0
    """targets are ``sigmoid(logit / temperature)``: 1 = the teacher's probabilities, above 1 softer"""
    hard_threshold: float = 0.0
    """0: soft targets; otherwise targets are 1 where the teacher's probability reaches it, else 0"""
    species_floor: float = -1.0
    """a species is learnt when the teacher's probability reaches this in at least one window of the audio;
    negative (the default): every species of a teacher over a species list (a zero-shot bundle of a
    ``taxonomy.csv``, a trained head: the site's list), :data:`ALL_CLASSES_FLOOR` for a teacher over all of its
    model's classes (chosen by cross-validation against the teacher, docs/accuracy.md)"""
    call_threshold: float = 0.0
    """a window whose highest learnt-species probability reaches this is a call: it is mixed into other
    windows as a training example (the synthesis of ``birdd train``, teacher scores in place of labels);
    0: every window (chosen by cross-validation, docs/accuracy.md)"""
    max_calls: int = 3000
    """at most this many calls are mixed (a seeded sample of them when there are more)"""
    augment_windows: int = 12000
    """training windows of augmented audio scored by the teacher as it is (:mod:`trainer.distill_augment`: a
    piece of one recording mixed with another at a random level and offset, at a random gain); 0: none (12000
    chosen by cross-validation against the teacher on the station protocol, docs/accuracy.md)"""
    augment_snr_db: tuple[float, float] = (-10.0, 10.0)
    """level of the added recording relative to the piece it is mixed into (decibels, uniform)"""
    augment_gain_db: tuple[float, float] = (-12.0, 6.0)
    """overall gain of an augmented piece (decibels, uniform; peaks are then limited to 1)"""

    def __post_init__(self) -> None:
        if not isinstance(self.neighbours, int) or self.neighbours < 0:
            raise ValueError("must be 0 or more (windows on each side)")
        if not isinstance(self.augment_windows, int) or self.augment_windows < 0:
            raise ValueError("must be 0 or more (augmented windows)")


ALL_CLASSES_FLOOR = 0.1
"""the species floor of the default for a teacher over all of BirdNET's classes (6522: most are not at the site)"""


STUDENT_HEAD = HeadParams(loss="squares", l2=3.0)
"""least squares on the teacher's probabilities, calibrated: chosen by cross-validation against the teacher
(docs/accuracy.md; on the station protocol it beat the logits floored at -6, ``--set
student.head.logit_floor=-6``); ``--set student.head.loss=logistic --set student.head.l2=0.01`` is ``birdd
train``'s head"""


@dataclass(frozen=True)
class DistillRecipe(Overridable):
    """A full distillation configuration: the student's STSG recipe and the teacher's targets.

    ``student.synthesis.windows_per_recording`` is the number of mixtures per call,
    ``student.synthesis.background_windows`` the number of real windows (teacher targets as they are).
    """

    student: Recipe = field(default_factory=lambda: Recipe(head=STUDENT_HEAD))
    teacher: TeacherParams = field(default_factory=TeacherParams)
