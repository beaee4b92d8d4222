"""The session document (model layer): section signals, one command per edit, undo that keeps trials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lla_studio.core.document import SECTIONS, SessionDocument
from lla_studio.core.errors import LLAStudioError
from lla_studio.core.kernels import parse_kernel
from lla_studio.core.session import load_session
from lla_studio.core.space import RealParameter, SearchSpace
from lla_studio.core.specs import Trial

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


@pytest.fixture
def doc():
    document = SessionDocument(load_session(SESSIONS / "branin.json"))
    seen: list[tuple[str, ...]] = []
    document.changed.connect(seen.append)
    return document, seen


def test_a_seed_edit_changes_the_loop_section_only_and_is_one_undo(doc):
    document, seen = doc
    before = document.session
    command = document.edit("Seed 3", loop=replace(before.loop, seed=3))
    assert command.sections == ("loop",) and seen == [("loop",)]
    assert document.session.loop.seed == 3 and document.session.kernel == before.kernel
    assert document.stack.count == 1 and document.stack.undo_text == "Seed 3"
    document.undo()
    assert document.session == before and seen[-1] == ("loop",)
    document.redo()
    assert document.session.loop.seed == 3


def test_one_add_is_one_undo(doc):
    document, _ = doc
    space = document.session.search_space
    grown = SearchSpace([*space.parameters, RealParameter("x3", 0.0, 1.0)])
    document.edit("Add parameter", search_space=grown)
    assert document.stack.count == 1
    document.undo()
    assert document.session.search_space == space and not document.stack.can_undo


def test_consecutive_edits_of_one_field_merge(doc):
    document, _ = doc
    loop = document.session.loop
    for seed in (1, 12, 123):
        document.edit(f"Seed {seed}", merge_key="seed", loop=replace(loop, seed=seed))
    document.edit("Budget 9", loop=replace(document.session.loop, budget=9))
    assert document.stack.count == 2
    document.undo()
    document.undo()
    assert document.session.loop == loop


def test_undo_keeps_the_trials_the_study_added_since(doc):
    document, _ = doc
    graph = parse_kernel("scale(matern52(x1) * matern52(x2))")
    document.edit("Kernel", kernel=graph)
    trial = Trial(0, {"x1": 0.5, "x2": 0.5}, status="completed", value=1.0)
    document.set_trials((trial,))
    assert document.stack.count == 1  # trials come from the study: not an edit
    document.undo()
    assert document.session.kernel != graph and document.session.trials == (trial,)
    document.redo()
    assert document.session.kernel == graph and document.session.trials == (trial,)


def test_a_refused_edit_or_undo_changes_nothing(doc):
    document, seen = doc
    before = document.session
    with pytest.raises(LLAStudioError):
        document.edit("Kernel", kernel=parse_kernel("rbf(no_such_feature)"))
    assert document.session == before and document.stack.count == 0 and not seen
    # an undo the current trials forbid (they use the parameter the undo would remove) is refused
    space = before.search_space
    grown = SearchSpace([*space.parameters, RealParameter("x3", 0.0, 1.0)])
    document.edit("Add parameter", search_space=grown)
    document.set_trials((Trial(0, {"x1": 0.5, "x2": 0.5, "x3": 0.5}, status="completed", value=1.0),))
    with pytest.raises(LLAStudioError):
        document.undo()
    assert document.session.search_space == grown and document.stack.can_undo


def test_load_replaces_everything_and_clears_the_stack(doc):
    document, seen = doc
    document.edit("Seed", loop=replace(document.session.loop, seed=5))
    loaded = []
    document.loaded.connect(lambda: loaded.append(1))
    other = load_session(SESSIONS / "hartmann6.json")
    document.load(other)
    assert document.session == other and document.stack.count == 0 and loaded == [1]
    assert "search_space" in seen[-1] and set(seen[-1]) <= set(SECTIONS)
    with pytest.raises(TypeError, match="not a session section"):
        document.edit("x", seeds=3)


def test_set_sections_changes_without_a_command(doc):
    document, seen = doc
    graph = parse_kernel("scale(rbf(x1)) + scale(rbf(x2))")
    assert document.set_sections(kernel=graph) == ("kernel",)
    assert document.session.kernel == graph and document.stack.count == 0 and seen == [("kernel",)]
    assert document.set_sections(kernel=graph) == ()
    with pytest.raises(LLAStudioError):
        document.set_sections(kernel=parse_kernel("rbf(nope)"))
    assert document.session.kernel == graph
