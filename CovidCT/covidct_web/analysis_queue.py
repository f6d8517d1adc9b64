"""At most N analyses at once across all session processes; the rest wait in line.

Sessions are separate processes, so the line is a folder of ticket files shared by all
of them: a ticket's name starts with the time it was taken (first come, first served)
and holds its owner's process id, so the ticket of a session that died is ignored and
removed instead of blocking the line forever.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Optional


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class AnalysisQueue:
    def __init__(self, folder, slots: int):
        if slots < 1:
            raise ValueError("At least one analysis must be allowed at a time.")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slots = int(slots)

    def join(self) -> Path:
        """Take a ticket (this process owns it)."""
        ticket = self.folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.ticket"
        ticket.write_text(str(os.getpid()))
        return ticket

    def leave(self, ticket: Optional[Path]) -> None:
        if ticket is not None:
            ticket.unlink(missing_ok=True)

    def _live_tickets(self) -> list:
        tickets = []
        for path in sorted(self.folder.glob("*.ticket")):
            try:
                pid = int(path.read_text() or 0)
            except (OSError, ValueError):
                continue  # being written or just removed
            if _process_alive(pid):
                tickets.append(path)
            else:
                path.unlink(missing_ok=True)
        return tickets

    def position(self, ticket: Path) -> int:
        """0 when the ticket may run now, else how many analyses are ahead of it in the line."""
        tickets = self._live_tickets()
        if ticket not in tickets:
            raise LookupError("This ticket is no longer in the queue.")
        return max(0, tickets.index(ticket) - self.slots + 1)
