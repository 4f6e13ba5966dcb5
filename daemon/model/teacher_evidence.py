"""How much a distilled student's teacher heard each species in the audio it was distilled on.

``birdd distill`` records it in the student's manifest (``distillation.teacher_evidence``: ``found_at`` and,
per species, the teacher's highest probability ``peak`` and the number of ``windows`` reaching ``found_at``);
``birdd distill`` and ``birdd info`` name the species it never found, which the student knows poorly.
"""

from __future__ import annotations

NAMED = 10
"""species named in a message; the rest are counted"""


def never_found(species: dict) -> list[str]:
    """Codes of the species no window of which reached ``found_at``, lowest peak first (malformed entries skipped)."""
    peaks = {code: seen.get("peak") for code, seen in species.items()
             if isinstance(seen, dict) and not seen.get("windows")}
    return sorted(peaks, key=lambda code: peaks[code] if isinstance(peaks[code], int | float) else 0.0)


def named(codes: list[str]) -> str:
    """The first :data:`NAMED` codes, then "..." if there are more."""
    return ", ".join(codes[:NAMED]) + (", ..." if len(codes) > NAMED else "")
