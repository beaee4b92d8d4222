"""PosteriorLab: drive the real panel and the real lab process, assert on what the views hold."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from PySide6.QtWidgets import QDoubleSpinBox, QLineEdit

from lla_studio.engine.posterior_worker import PANEL_MODELS, QUANTILE_METHODS
from lla_studio.gui.posterior_lab import PosteriorLab

GRID = 64
TIMEOUT_MS = 30_000
COMPONENTS = {"shear-frame": 2, "mixture": 2}


@pytest.fixture
def panel(qtbot):
    gc_was_enabled = gc.isenabled()
    lab = PosteriorLab(grid_n=GRID, starts=6, debounce_ms=40)
    qtbot.addWidget(lab)
    lab.resize(1200, 800)
    # while the lab process's pipe thread runs, cyclic GC runs on the GUI thread only (engine.gui_gc)
    assert not gc.isenabled()
    yield lab
    assert lab.shutdown(), "the lab process did not stop the computation"
    assert not lab.controller.attached
    assert gc.isenabled() == gc_was_enabled


def wait_result(qtbot, panel: PosteriorLab, after: int = 0, final: bool = True) -> None:
    """Wait until the newest request (newer than ``after``) is on screen.

    The condition returns a bool instead of asserting: a failing rewritten ``assert`` formats the
    repr of the snapshot (big arrays) every poll, which a loaded machine does not need.
    """

    def done() -> bool:
        snap = panel.snapshot()
        if panel.controller.has_pending or snap is None:
            return False
        rid = snap.request_id
        ok = rid > after and rid == panel.controller.latest_request_id
        if final:
            ok = ok and snap.final and not panel.controller.busy
        return ok and not panel.status_is_error()

    try:
        qtbot.waitUntil(done, timeout=TIMEOUT_MS)
    except Exception:
        pytest.fail(f"no result for a request after #{after}; status: {panel.status_text()!r}")


def wait_error(qtbot, panel: PosteriorLab) -> None:
    def done() -> bool:
        return not panel.controller.has_pending and not panel.controller.busy and panel.status_is_error()

    qtbot.waitUntil(done, timeout=TIMEOUT_MS)


def select_model(panel: PosteriorLab, name: str) -> None:
    """Through the combo box, as a user would."""
    panel.model_combo.setCurrentIndex(panel.model_combo.findData(name))
    assert panel.model_name() == name


@pytest.mark.parametrize("name", PANEL_MODELS)
def test_each_model_shows_grid_ellipses_marginals_and_quantiles(qtbot, panel, name):
    select_model(panel, name)
    wait_result(qtbot, panel)
    image = panel.overlay_image()
    assert image.shape == (GRID, GRID)
    assert image.dtype == np.float32 and image.flags.c_contiguous
    assert np.all(np.isfinite(image)) and image.max() > 0
    assert panel.ellipse_count() == COMPONENTS.get(name, 1)
    one_sigma, two_sigma = panel.ellipse_curves()
    assert np.isnan(one_sigma[:, 0]).sum() == panel.ellipse_count() - 1  # NaN separators between components
    assert panel.image.levels is not None and panel.image.levels[1] == pytest.approx(float(image.max()))

    snap = panel.snapshot()
    assert snap.density.shape == snap.grid_shape == image.shape
    np.testing.assert_allclose(image, snap.density, rtol=1e-6)
    assert not snap.density.flags.writeable  # read-only, also after the trip through the pipe
    curves = panel.marginal_curves()
    assert list(curves) == list(snap.param_names)
    for param, c in curves.items():
        assert set(c) == {"x", "grid", "laplace", "mixture"}  # no VI requested
        assert c["x"].shape == (GRID,)
        dx = c["x"][1] - c["x"][0]
        assert float(c["grid"].sum() * dx) == pytest.approx(1.0, rel=1e-6)
        assert np.all(np.isfinite(c["laplace"])) and np.all(np.isfinite(c["mixture"]))

    q = panel.quantile_table()
    assert q.shape == (2, 5, len(QUANTILE_METHODS))
    assert np.all(np.isfinite(q[:, :, :3])) and np.all(np.isnan(q[:, :, 3]))  # VI column empty without VI
    assert np.all(np.diff(q[:, :, 0], axis=1) > 0)  # grid quantiles increase with the level
    text = panel.quantile_table_text()
    assert len(text) == 10 and text[0][3] == "—"
    assert "ready" in panel.status_text()


def test_bioassay_prior_sd_changes_the_overlay(qtbot, panel):
    select_model(panel, "bioassay")
    wait_result(qtbot, panel)
    flat = panel.overlay_image()
    q_flat = panel.quantile_table()

    before = panel.displayed_request_id()
    panel.set_parameter("prior_beta", (10.0, 10.0))  # switches the prior on through its check box
    wait_result(qtbot, panel, after=before)
    assert panel.snapshot().spec["prior_beta"] == [10.0, 10.0]
    wide = panel.overlay_image()

    # edit the prior sd in its spin box, as a user would
    spin = panel.findChild(QDoubleSpinBox, "field_prior_beta_sd")
    assert spin is not None and spin.isEnabled()
    before = panel.displayed_request_id()
    spin.setValue(2.0)
    wait_result(qtbot, panel, after=before)
    tight = panel.overlay_image()
    assert panel.snapshot().spec["prior_beta"] == [10.0, 2.0]
    assert wide.shape == tight.shape == (GRID, GRID)
    assert not np.allclose(flat, wide) and not np.allclose(wide, tight)
    q_tight = panel.quantile_table()
    # a tight N(10, 2^2) prior on beta pulls the beta interval towards 10 and narrows it
    beta_width = lambda q: q[1, 4, 0] - q[1, 0, 0]  # noqa: E731
    assert beta_width(q_tight) < 0.7 * beta_width(q_flat)


def test_banana_curvature_changes_the_overlay(qtbot, panel):
    select_model(panel, "banana")
    wait_result(qtbot, panel)
    curved = panel.overlay_image()
    assert panel.parameter("c") == pytest.approx(1.0)
    before = panel.displayed_request_id()
    panel.set_parameter("c", 0.0)  # no curvature: a Gaussian, where Laplace is exact
    wait_result(qtbot, panel, after=before)
    straight = panel.overlay_image()
    assert straight.shape == curved.shape and not np.allclose(straight, curved)
    jsd = panel.snapshot().jsd
    assert jsd["laplace"] < 1e-3
    q = panel.quantile_table()
    np.testing.assert_allclose(q[:, :, 1], q[:, :, 0], atol=0.05)  # Laplace quantiles match the grid's

    # the edit survives a trip to another model and back
    select_model(panel, "mixture")
    select_model(panel, "banana")
    assert panel.parameter("c") == 0.0
    before = panel.displayed_request_id()
    wait_result(qtbot, panel, after=before)
    np.testing.assert_allclose(panel.overlay_image(), straight)


BAD_INPUTS = [
    ("expression", "-(a**2 + b**2/2", "syntax error"),
    ("expression", "log(-1 - a**2)", "NaN everywhere"),
    ("expression", "-a**2", "not negative definite"),
    ("expression", "foo(a)", "'foo' is not allowed"),
    ("low", (5.0, -4.0), "needs low < high"),
]


def test_bad_expression_shows_an_error_and_keeps_the_previous_image(qtbot, panel):
    select_model(panel, "expression")
    wait_result(qtbot, panel)
    errors = []
    panel.error_displayed.connect(errors.append)
    line = panel.findChild(QLineEdit, "field_expression")
    assert line is not None
    for n, (field, value, words) in enumerate(BAD_INPUTS, start=1):
        good = panel.overlay_image()
        good_id = panel.displayed_request_id()
        panel.set_parameter(field, value)
        wait_error(qtbot, panel)
        text = panel.status_text()
        assert words in text, text
        assert text.startswith("Error:")
        assert "color: #c00000" in panel.status_label.styleSheet()  # red
        assert len(errors) == n  # one message per failed request, no dialog storm
        np.testing.assert_array_equal(panel.overlay_image(), good)
        assert panel.displayed_request_id() == good_id

        # fixing the input (here: typing into the line edit) clears the error and shows a new result
        if field == "expression":
            line.setText(f"-(a**2 + b**2)/2 - a*b/{n + 1}")
        else:
            panel.set_parameter("low", (-4.0, -4.0))
        wait_result(qtbot, panel, after=good_id)
        assert not panel.status_is_error() and "ready" in panel.status_text()


def test_newest_request_wins(qtbot, panel):
    select_model(panel, "banana")
    wait_result(qtbot, panel)
    shown: list[int] = []
    panel.result_displayed.connect(shown.append)
    old = panel.snapshot()

    # without the debounce: every edit becomes a request at once, each cancelling the previous
    ids = []
    for c in (0.3, 0.6, 1.2, 0.9, 0.5):
        panel.set_parameter("c", c)
        ids.append(panel.controller.flush())
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    wait_result(qtbot, panel, after=old.request_id)
    assert set(shown) == {ids[-1]}
    assert panel.snapshot().spec["c"] == 0.5

    # an answer to an older request that arrives late is dropped by the controller and the panel
    dropped = panel.controller.dropped
    image = panel.overlay_image()
    panel.controller._on_computed(old)
    panel._on_result(old)
    assert panel.controller.dropped == dropped + 1
    assert panel.displayed_request_id() == ids[-1]
    np.testing.assert_array_equal(panel.overlay_image(), image)

    # with the debounce: a burst of edits becomes a single request with the last value
    first = panel.controller.latest_request_id
    for c in (0.2, 0.4, 0.6, 0.7):
        panel.set_parameter("c", c)
    wait_result(qtbot, panel, after=first)
    assert panel.controller.latest_request_id == first + 1
    assert panel.snapshot().spec["c"] == 0.7


def test_vi_answers_in_stages_with_jsd_traces(qtbot, panel):
    select_model(panel, "mixture")
    wait_result(qtbot, panel)
    stages: list[str] = []
    panel.result_displayed.connect(lambda _id: stages.append(panel.snapshot().stage))
    before = panel.displayed_request_id()
    panel.set_settings(vi=True, vi_steps=30, show_samples=True)
    wait_result(qtbot, panel, after=before)
    assert stages == ["laplace", "vi-warm", "vi"]
    traces = panel.jsd_traces()
    assert set(traces) == {"warm", "cold"}
    assert traces["warm"].shape[1] == 2 and np.all(np.diff(traces["warm"][:, 0]) >= 0)
    assert np.all(np.isfinite(panel.quantile_table()))  # VI column filled
    assert all("vi" in c for c in panel.marginal_curves().values())
    assert all(item.isVisible() for item in panel.sample_items.values())
    assert panel.ellipse_count() == 2


def test_shutdown_stops_a_running_computation(qtbot, panel):
    """Shutdown cancels the computation in progress in the lab process (it ends "cancelled", not
    by running to the end); no wall-clock bound: it flakes under load."""
    select_model(panel, "shear-frame")
    panel.set_settings(vi=True, vi_steps=400)
    rid = panel.controller.flush()
    assert panel.controller.busy
    # the lab process may still be importing torch: wait until it computes this request
    qtbot.waitUntil(lambda: panel.controller.state(rid) == "running", timeout=60_000)
    qtbot.wait(300)  # let it get into the optimisation
    assert panel.shutdown()
    assert panel.controller.state(rid) == "cancelled"
    assert not panel.controller.attached
    assert panel.shutdown()  # idempotent
    panel.set_parameter("sigma", 0.02)  # edits after shutdown are ignored, no crash
    qtbot.wait(100)
    assert not panel.controller.has_pending


def test_screenshot_renders(qtbot, panel, tmp_path):
    select_model(panel, "mixture")
    wait_result(qtbot, panel)
    panel.show()
    qtbot.waitExposed(panel)
    path = tmp_path / "posterior_lab.png"
    assert panel.grab().save(str(path))
    assert path.stat().st_size > 10_000
