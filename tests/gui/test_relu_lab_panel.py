"""ReluLabPanel: drive the real panel and the real lab process, assert on what the views hold."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from lla_studio.core.relu_lab_types import GP
from lla_studio.gui.relu_lab_panel import ReluLabPanel

TIMEOUT_MS = 120_000  # the first answer fits three models (several seconds on a busy 2-core box)


@pytest.fixture
def panel(qtbot):
    gc_was_enabled = gc.isenabled()
    lab = ReluLabPanel(box_scale=10, debounce_ms=40)
    qtbot.addWidget(lab)
    lab.resize(1400, 900)
    # while the lab process's pipe thread runs, cyclic GC runs on the GUI thread only (engine.gui_gc)
    assert not gc.isenabled()
    yield lab
    assert lab.shutdown(), "the lab process did not stop the computations"
    assert not lab.controller.attached
    assert gc.isenabled() == gc_was_enabled


def wait_result(qtbot, panel: ReluLabPanel, box_scale: float | None = None) -> None:
    """Wait until the newest request is on screen (and, if given, shows ``box_scale``).

    The condition returns a bool instead of asserting: a failing rewritten ``assert`` formats the
    repr of the result (big arrays) every poll, which a loaded machine does not need.
    """

    def done() -> bool:
        r = panel.result
        if r is None or panel.is_busy() or panel.status_is_error():
            return False
        if panel.displayed_request_id() != panel.controller.latest_request_id():
            return False
        return box_scale is None or r.settings.box_scale == box_scale

    try:
        qtbot.waitUntil(done, timeout=TIMEOUT_MS)
    except Exception:
        pytest.fail(f"no result (box ×{box_scale}); status: {panel.status_text()!r}")


def small_networks(panel: ReluLabPanel) -> None:
    """Smaller networks for tests about the panel's mechanics (cheaper fits); set before the first
    request leaves the debounce timer, so only these are fitted."""
    panel.width_spin.setValue(16)
    panel.depth_spin.setValue(1)


def test_at_x100_the_relu_maximizer_is_on_the_boundary_and_tanh_and_gp_are_not(qtbot, panel):
    wait_result(qtbot, panel, 10.0)
    with qtbot.waitSignal(panel.resultShown, timeout=TIMEOUT_MS) as blocker:
        panel.set_box_scale(100)  # moves the slider, as a user would
    assert panel.box_label.text() == "×100"
    wait_result(qtbot, panel, 100.0)
    result = panel.result
    assert blocker.args[0] is result or blocker.args[0].settings.box_scale == 100.0
    assert result.settings.box_scale == 100.0
    assert tuple(result.models) == ("relu", "tanh", GP)
    # the pathology, read from the panel's data
    assert result.models["relu"].on_boundary
    assert abs(abs(result.models["relu"].maximizer[0]) - 100.0) < 1e-6
    assert not result.models["tanh"].on_boundary
    assert not result.models[GP].on_boundary
    # what the plot items hold: arrays of the grid length, the marker at the maximizer
    m = len(result.grid)
    for key in ("relu", "tanh", GP):
        items = panel.curve_items(key)
        for name in ("mean", "std", "acq"):
            x, y = items[name].getData()
            assert len(x) == m and len(y) == m, (key, name)
            np.testing.assert_allclose(x, result.grid)
        x, y = items["upper"].getData()
        np.testing.assert_allclose(y, result.models[key].mean + 2 * result.models[key].std)
        mx, _ = items["marker"].getData()
        assert mx[0] == pytest.approx(result.models[key].maximizer[0])
        assert items["line"].value() == pytest.approx(result.models[key].maximizer[0])
    _, relu_std = panel.curve_items("relu")["std"].getData()
    _, gp_std = panel.curve_items(GP)["std"].getData()
    assert relu_std[0] > 20 * gp_std[0]  # at the box edge
    rows = {r[0]: r for r in panel.table_text()}
    assert rows["ReLU LLA"][2] == "on the boundary"
    assert rows["tanh LLA"][2].startswith("inside")
    assert rows["GP (Matérn-5/2)"][2] == "inside"
    assert not panel.status_is_error()


def test_slider_bursts_are_debounced_and_the_newest_wins(qtbot, panel):
    small_networks(panel)
    wait_result(qtbot, panel, 10.0)
    for scale in (20, 50, 200, 500, 1000):
        panel.set_box_scale(scale)
    wait_result(qtbot, panel, 1000.0)
    r = panel.result
    assert r.settings.box_scale == 1000.0 and r.box[1, 0] == 1000.0
    assert r.models["relu"].on_boundary and not r.models[GP].on_boundary
    assert "fits reused" in panel.status_text()  # the fixed frame: moving the box refits nothing


def test_invalid_model_choice_shows_an_error_and_keeps_the_plot(qtbot, panel):
    small_networks(panel)
    wait_result(qtbot, panel)
    shown = panel.result
    with qtbot.waitSignal(panel.errorShown, timeout=5_000):
        panel.net_b_combo.setCurrentIndex(panel.net_b_combo.findData("relu"))
    assert panel.status_is_error() and "listed twice" in panel.status_text()
    assert panel.result is shown
    panel.net_b_combo.setCurrentIndex(panel.net_b_combo.findData("none"))
    wait_result(qtbot, panel)
    assert tuple(panel.result.models) == ("relu", GP)
    assert not panel.curves["net_b"].mean.isVisible()


def test_boundary_rate_runs_in_the_background(qtbot, panel):
    panel.net_b_combo.setCurrentIndex(panel.net_b_combo.findData("none"))
    panel.set_box_scale(100)
    wait_result(qtbot, panel, 100.0)
    panel.steps_spin.setValue(1)
    with qtbot.waitSignal(panel.rateShown, timeout=TIMEOUT_MS):
        panel.run_boundary_rate()
    rate = panel.rate_result
    assert rate.steps == 1 and set(rate.rates) == {"relu", GP}
    assert rate.rates["relu"] == 1.0 and rate.rates[GP] == 0.0
    rows = {r[0]: r for r in panel.table_text()}
    assert rows["ReLU LLA"][4].startswith("100%")
    assert rows["GP (Matérn-5/2)"][4].startswith("0%")
    # an edit makes the rate stale: the table says so instead of showing old numbers
    panel.seed_spin.setValue(1)
    assert panel.rate_result is None
    wait_result(qtbot, panel)
    assert all("Run BO steps" in r[4] for r in panel.table_text())


def test_2d_mode_shows_maps(qtbot, panel):
    small_networks(panel)
    panel.dim_combo.setCurrentIndex(panel.dim_combo.findData(2))
    wait_result(qtbot, panel)
    r = panel.result
    assert r.settings.dim == 2
    assert panel.stack.currentWidget() is panel.plots_2d
    for key in ("relu", "tanh", GP):
        images = panel.map_images(key)
        assert [img.shape for img in images] == [(60, 60)] * 3
        assert all(img.dtype == np.float32 and np.all(np.isfinite(img)) for img in images)
        assert r.models[key].maximizer.shape == (2,)
    assert panel.table_text()[0][1].startswith("(")


def test_shutdown_in_the_middle_of_a_fit_cancels_it(qtbot, panel):
    """Shutdown cancels the fit in progress in the lab process (it ends by cancellation, not by
    running to the end). How fast is not asserted: a wall-clock bound flakes on a loaded 2-core
    machine."""
    panel.controller.flush()  # skip the debounce: the fits start as soon as the process can
    rid = panel.controller.latest_request_id()
    assert rid > 0 and panel.controller.busy
    # the lab process pays torch's one-time imports before it starts a request (uncancellable)
    qtbot.waitUntil(lambda: panel.controller.state(rid) == "running", timeout=60_000)
    qtbot.wait(500)  # well inside the first fit (several seconds)
    assert panel.result is None
    assert panel.shutdown()
    assert panel.controller.state(rid) == "cancelled"
    assert not panel.controller.attached
