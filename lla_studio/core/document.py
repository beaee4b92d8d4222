"""The session document: the one session a window edits, its sections' change signals, and the
command stack every edit goes through.

A :class:`SessionDocument` holds a :class:`~lla_studio.core.session.Session` (immutable; every edit
builds a new one, so consistency is checked by the session's own constructor) and announces which
*sections* changed -- ``search_space``, ``transforms``, ``kernel``, ``surrogate``, ``acquisition``,
``objective``, ``loop``, ``trials``, ``name``, ``description`` -- through a psygnal signal, so each
listener updates only what it shows: a seed edit changes ``loop`` alone, and the kernel editor, the
search-space table and their undo histories are left as they are.

Every user edit is one :class:`Command` on the document's :class:`CommandStack` (undo / redo /
merge of consecutive edits of one field, as Qt's ``QUndoStack`` does); the GUI adapts the stack to
its ``QUndoStack`` so that edits of the document and edits inside an editor (a node moved on the
kernel canvas) share one history. Opening or replacing the whole session (:meth:`SessionDocument.load`)
is not undoable and clears the stack.

No Qt, no torch (the model layer): usable from a notebook, and tested without a window.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from psygnal import Signal

from lla_studio.core.session import Session

__all__ = ["SECTIONS", "Command", "CommandStack", "SessionDocument"]

SECTIONS: tuple[str, ...] = tuple(f.name for f in fields(Session))
"""The session's sections, in the session's field order."""


@dataclass(frozen=True)
class Command:
    """One undoable edit: the values of the sections it changed, before and after.

    Undo puts back only these sections: trials the study added after the edit stay.

    Attributes:
        label: What the user did ("Seed 3", "Kernel", "Add parameter").
        before: Section name -> value before the edit.
        after: Section name -> value after it (the same keys).
        merge_key: Consecutive commands with the same (not ``None``) key merge into one, keeping the
            first ``before`` (typing digits into the seed box is one undo step).
    """

    label: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    merge_key: Hashable | None = None

    @property
    def sections(self) -> tuple[str, ...]:
        """The sections this command changes."""
        return tuple(self.after)


def changed_sections(a: Session, b: Session) -> tuple[str, ...]:
    """The sections that differ between two sessions (session field order)."""
    return tuple(name for name in SECTIONS if getattr(a, name) != getattr(b, name))


class CommandStack:
    """An undo stack of :class:`Command` s with an index (``QUndoStack``'s model, without Qt).

    ``apply(sections)`` is called with ``{section: value}`` to put on undo and redo.
    """

    def __init__(self, apply: Callable[[Mapping[str, Any]], None]) -> None:
        self._apply = apply
        self._commands: list[Command] = []
        self._index = 0  # commands[:index] are done

    def push(self, command: Command) -> None:
        """Record an edit that has already been applied (drops anything that was undone)."""
        del self._commands[self._index :]
        last = self._commands[-1] if self._commands else None
        if last is not None and command.merge_key is not None and last.merge_key == command.merge_key:
            merged_after = {**last.after, **command.after}
            merged_before = {**{k: v for k, v in command.before.items() if k not in last.before}, **last.before}
            self._commands[-1] = Command(command.label, merged_before, merged_after, last.merge_key)
        else:
            self._commands.append(command)
        self._index = len(self._commands)

    def undo(self) -> Command | None:
        """Undo the newest done command; if putting it back is refused (raises), nothing changes."""
        if not self.can_undo:
            return None
        command = self._commands[self._index - 1]
        self._apply(command.before)
        self._index -= 1
        return command

    def redo(self) -> Command | None:
        """Redo the oldest undone command; if it is refused (raises), nothing changes."""
        if not self.can_redo:
            return None
        command = self._commands[self._index]
        self._apply(command.after)
        self._index += 1
        return command

    def clear(self) -> None:
        self._commands.clear()
        self._index = 0

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def count(self) -> int:
        """Commands on the stack (done and undone)."""
        return len(self._commands)

    @property
    def index(self) -> int:
        """How many of them are done."""
        return self._index

    @property
    def undo_text(self) -> str:
        return self._commands[self._index - 1].label if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].label if self.can_redo else ""


class SessionDocument:
    """The session a window edits, with section change signals and one command stack.

    Signals:
        changed(tuple[str, ...]): the sections that changed (after an edit, an undo, a redo or a
            :meth:`load`; never emitted with nothing changed).
        loaded(): a whole new session was put in place by :meth:`load` (listeners rebuild).
    """

    changed = Signal(tuple)
    loaded = Signal()

    def __init__(self, session: Session) -> None:
        self._session = session
        self.stack = CommandStack(self._put_sections)

    @property
    def session(self) -> Session:
        return self._session

    def load(self, session: Session) -> None:
        """Replace the whole session (open, new, recover): not undoable; clears the stack."""
        before = self._session
        self._session = session
        self.stack.clear()
        self.loaded.emit()
        sections = changed_sections(before, session)
        if sections:
            self.changed.emit(sections)

    def edit(self, label: str, merge_key: Hashable | None = None, **changes: Any) -> Command | None:
        """Change sections as one undoable command; returns it (``None`` when nothing changed).

        Raises:
            SessionError, SearchSpaceError, ...: the edited session is inconsistent (the document
                and its stack are unchanged).
        """
        unknown = sorted(set(changes) - set(SECTIONS))
        if unknown:
            raise TypeError(f"not a session section: {', '.join(unknown)}")
        before = self._session
        after = replace(before, **changes)  # the session's constructor checks consistency
        sections = changed_sections(before, after)
        if not sections:
            return None
        command = Command(label, {s: getattr(before, s) for s in sections}, {s: getattr(after, s) for s in sections}, merge_key)
        self._put(after)
        self.stack.push(command)
        return command

    def set_trials(self, trials: tuple[Any, ...]) -> None:
        """The study's trials (they come from the study process, not from an edit: not undoable)."""
        if tuple(trials) != self._session.trials:
            self._put(self._session.with_trials(tuple(trials)))

    def set_sections(self, **changes: Any) -> tuple[str, ...]:
        """Change sections without a command: for changes whose undo lives elsewhere (an editor's
        own command, e.g. a wire drawn on the kernel canvas, already is the user's undo step).
        Returns the sections that changed.

        Raises:
            SessionError, ...: the changed session is inconsistent (nothing changes).
        """
        unknown = sorted(set(changes) - set(SECTIONS))
        if unknown:
            raise TypeError(f"not a session section: {', '.join(unknown)}")
        before = self._session
        self._put(replace(before, **changes))
        return changed_sections(before, self._session)

    def undo(self) -> Command | None:
        return self.stack.undo()

    def redo(self) -> Command | None:
        return self.stack.redo()

    def _put_sections(self, values: Mapping[str, Any]) -> None:
        self._put(replace(self._session, **values))

    def _put(self, session: Session) -> None:
        before, self._session = self._session, session
        sections = changed_sections(before, session)
        if sections:
            self.changed.emit(sections)
