"""What a conversion did: the notes and warnings it prints, and the refusal it raises."""
from typing import List


class ConversionRefused(ValueError):
    """The source uses something the target format cannot express exactly; the message says what and why."""


class Report:
    """Lines collected during a conversion: `notes` (what was renamed, added, regenerated, defaulted)
    and `warnings` (behaviour that differs between the ports and matters for this model)."""

    def __init__(self):
        self.notes: List[str] = []
        self.warnings: List[str] = []

    def note(self, line: str) -> None:
        self.notes.append(line)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    def lines(self) -> List[str]:
        """All lines, notes first, warnings prefixed with 'warning: '."""
        return list(self.notes) + [f"warning: {line}" for line in self.warnings]
