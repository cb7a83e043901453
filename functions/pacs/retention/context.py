"""What a retention job gets: the clients, the time it runs at, its page size and time
budget, and where it puts its counts and error codes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pacs.clients import Clients, HasClients
from pacs.errors import PacsError
from pacs.paging import Budget

MAX_ERROR_CODES = 20


def delete_blob(blob: Any) -> bool:
    """Delete this generation of an object; False when it was already gone or replaced."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    try:
        blob.delete(if_generation_match=blob.generation)
    except (NotFound, PreconditionFailed):
        return False
    return True


def error_code(step: str, err: BaseException) -> str:
    """A short code for a failure: the step and the error's code or type, never its text
    (which could quote an object name or a document)."""
    kind = err.code if isinstance(err, PacsError) else type(err).__name__
    return f"{step}:{kind}"


@dataclass
class JobContext(HasClients):
    """One run of one job.

    Attributes
    ----------
    clients : Clients
    now : datetime
        The run's time (aware, UTC): every cutoff is computed from it. Injected in tests,
        so records seeded "in the past" expire without waiting.
    page_size : int
        Documents or objects read per page.
    budget : Budget
        Time left; a job stops between pages once it is spent and sets :attr:`more`.
    scope : str
        Restricts storage listings (and the instance documents reconciled against them) to
        object names under this prefix, e.g. ``"{uid}/"``; empty means everything. Tests
        use it to stay within their own data; scheduled runs never set it.
    options : mapping
        Job options from the message (``usage_trends``: ``day``).
    counts : Counter
        What the job did, by name (``shares_expired``, ``objects_removed``, ...).
    errors : list of str
        Error codes (:func:`error_code`), each once.
    more : bool
        Set when the job stopped before the end (time budget): a continuation or the next
        scheduled run goes on.
    progressed : bool
        Set when the job changed or advanced anything (a continuation is only sent then, so
        a job that keeps failing on the same items does not loop).
    """

    clients: Clients
    now: datetime
    page_size: int
    budget: Budget
    scope: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    more: bool = False
    progressed: bool = False

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] += n

    def changed(self, name: str, n: int = 1) -> None:
        """Count something the job changed (deleted, expired, repaired)."""
        if n:
            self.counts[name] += n
            self.progressed = True

    def delete_object(self, blob: Any, counter: str, step: str) -> None:
        """Delete this generation of an object, counting it under ``counter``; a failure is
        recorded under ``step`` and the job goes on (the next run retries it)."""
        try:
            if delete_blob(blob):
                self.changed(counter)
        except Exception as err:  # noqa: BLE001 - counted; the next run retries it
            self.error(step, err)

    def error(self, step: str, err: BaseException, n: int = 1) -> None:
        """Record a failed item (the job goes on with the others)."""
        self.counts["errors"] += n
        code = error_code(step, err)
        if code not in self.errors and len(self.errors) < MAX_ERROR_CODES:
            self.errors.append(code)

    def out_of_time(self) -> bool:
        """True once the budget is spent (and marks the run as having more to do)."""
        if self.budget.spent():
            self.more = True
            return True
        return False


@dataclass(frozen=True)
class Job:
    """A named job of the registry.

    Attributes
    ----------
    name : str
        The ``job`` of the scheduled message.
    run : callable
        ``run(ctx)``: does the work, filling ``ctx.counts`` and ``ctx.errors``.
    summary : str
        One line for operators.
    """

    name: str
    run: Callable[[JobContext], None]
    summary: str
