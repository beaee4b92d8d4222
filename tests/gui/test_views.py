"""Live views with the search space: categorical axes for choices, conditional parameters only where active."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import pyqtgraph as pg
from PySide6.QtCore import Qt

from lla_studio.core.space_reader import search_space_from_dict
from lla_studio.core.surface import SurfaceSnapshot
from lla_studio.gui.views import MapsView, SliceView

SPACE = search_space_from_dict(
    {
        "parameters": [
            {"name": "optimizer", "type": "choice", "choices": ["sgd", "adam", "rmsprop"]},
            {"name": "momentum", "type": "real", "low": 0.0, "high": 0.99, "conditions": [{"parent": "optimizer", "values": ["sgd"]}]},
            {"name": "lr", "type": "real", "low": 1e-4, "high": 1e-1, "log": True},
        ]
    }
)


def _snapshot(params, axes, base_config):
    shape = tuple(len(a) for a in reversed(axes)) if len(axes) == 2 else (len(axes[0]),)
    base = SPACE.encode(base_config)
    rng = np.random.default_rng(0)
    return SurfaceSnapshot(
        request_id=1, params=params, axes=tuple(np.asarray(a, dtype=float) for a in axes),
        mean=rng.standard_normal(shape), sd=np.abs(rng.standard_normal(shape)), acquisition=rng.standard_normal(shape),
        observed_u=np.vstack([base, base]), observed_y=np.array([0.5, 0.7]), distance=np.zeros(2), incumbent_u=base,
    )


def test_slice_over_a_choice_has_categorical_ticks_and_hides_inactive_sliders(qtbot):
    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names))
    snap = _snapshot(("optimizer",), [np.arange(3.0)], {"optimizer": "adam", "lr": 0.01})
    view.update_surface(snap, SPACE.index("optimizer"), SPACE)
    ticks = view.plot.getAxis("bottom")._tickLevels
    assert ticks == [[(0.0, "sgd"), (1.0, "adam"), (2.0, "rmsprop")]]
    assert view.note_text == "" and len(view.mean.getData()[0]) == 3
    # with adam, momentum is inactive: its slider row is hidden, the others shown
    assert not view.fixed.is_row_visible("momentum")
    assert view.fixed.is_row_visible("lr")
    snap = _snapshot(("lr",), [np.geomspace(1e-4, 1e-1, 50)], {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01})
    view.update_surface(snap, SPACE.index("lr"), SPACE)
    assert view.fixed.is_row_visible("momentum")
    assert view.plot.getAxis("bottom")._tickLevels is None  # a real axis again


def test_slice_along_an_inactive_parameter_is_blanked_with_a_note(qtbot):
    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names))
    snap = _snapshot(("momentum",), [np.linspace(0, 0.99, 40)], {"optimizer": "adam", "lr": 0.01})
    view.update_surface(snap, SPACE.index("momentum"), SPACE)
    assert view.note_text == 'momentum is inactive at these values (active when optimizer == "sgd")'
    assert view.note.isVisible() and len(view.mean.getData()[0] if view.mean.getData()[0] is not None else []) == 0
    snap = _snapshot(("momentum",), [np.linspace(0, 0.99, 40)], {"optimizer": "sgd", "momentum": 0.5, "lr": 0.01})
    view.update_surface(snap, SPACE.index("momentum"), SPACE)
    assert view.note_text == "" and not view.note.isVisible() and len(view.mean.getData()[0]) == 40


def test_maps_label_choice_axes_and_blank_inactive_maps(qtbot):
    view = MapsView()
    qtbot.addWidget(view)
    axes = [np.arange(3.0), np.geomspace(1e-4, 1e-1, 20)]
    snap = _snapshot(("optimizer", "lr"), axes, {"optimizer": "adam", "lr": 0.01})
    view.update_surface(snap, (0, 2), None, space=SPACE)
    for key in view.MAPS:
        assert view.plots[key].getAxis("bottom")._tickLevels == [[(0.0, "sgd"), (1.0, "adam"), (2.0, "rmsprop")]]
        assert view.plots[key].getAxis("left")._tickLevels is None
        assert view.images[key].image.shape == (20, 3)
    snap = _snapshot(("momentum", "lr"), [np.linspace(0, 0.99, 10), axes[1]], {"optimizer": "rmsprop", "lr": 0.01})
    view.update_surface(snap, (1, 2), None, space=SPACE)
    assert "momentum is inactive" in view.note_text and view.notes["mean"].isVisible()
    assert np.all(view.images["mean"].image == 0)


def test_slice_ranges_follow_the_data_until_the_user_zooms(qtbot):
    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names))
    axis = [np.geomspace(1e-4, 1e-1, 50)]
    snap = _snapshot(("lr",), axis, {"optimizer": "adam", "lr": 0.01})
    view.update_surface(snap, SPACE.index("lr"), SPACE)
    lo = float(min((snap.mean - 2 * snap.sd).min(), snap.observed_y.min()))
    hi = float(max((snap.mean + 2 * snap.sd).max(), snap.observed_y.max()))
    y0, y1 = view.plot.viewRange()[1]
    assert y0 <= lo and y1 >= hi and (hi - lo) >= 0.6 * (y1 - y0)
    big = replace(snap, mean=snap.mean * 10)  # data outside the view: the range follows
    view.update_surface(big, SPACE.index("lr"), SPACE)
    assert view.plot.viewRange()[1][1] >= float((big.mean + 2 * big.sd).max())
    view.plot.getViewBox().sigRangeChangedManually.emit([True, True])  # the user zoomed: keep theirs
    view.plot.setYRange(-1.0, 1.0, padding=0)
    view.update_surface(snap, SPACE.index("lr"), SPACE)
    assert view.plot.viewRange()[1] == [-1.0, 1.0]
    view.plot.getViewBox().enableAutoRange()  # pyqtgraph's "A" button: follow the data again
    assert view.follow_data


def test_trials_table_rewrites_only_changed_rows(qtbot):
    from lla_studio.gui.trials_table import BEST_BRUSH, BOUNDARY_BRUSH, TrialsTable

    class Window:
        errors: list[str] = []
        told: list[tuple[int, float]] = []

        def show_error(self, message):
            self.errors.append(message)

        def tell(self, trial_id, value):
            self.told.append((trial_id, value))

    table = TrialsTable(Window())
    qtbot.addWidget(table)
    model = table.model_
    names = ["a", "b"]
    trials = tuple({"id": k, "status": "completed", "source": "initial", "config": {"a": k, "b": 2 * k}, "value": float(k), "message": None} for k in range(3))
    table.update_trials(trials, names)
    assert table.rowCount() == 3 and model.headerData(2, Qt.Orientation.Vertical) == "2"  # row labels: trial ids
    changed, inserted, resets = [], [], []
    model.dataChanged.connect(lambda a, b: changed.append((a.row(), b.row())))
    model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    model.modelReset.connect(lambda: resets.append(1))
    pending = {"id": 3, "status": "proposed", "source": "model", "config": {"a": 9, "b": 9}, "value": None,
               "message": None, "boundary": ("a high", "b high")}
    failed = dict(trials[1], status="failed", value=None, message="objective raised ValueError: boom")
    table.update_trials((trials[0], failed, trials[2], pending), names)
    assert table.rowCount() == 4 and inserted == [(3, 3)] and not resets
    assert sorted(set(changed)) == [(1, 1)]  # only the row whose trial changed (the best stayed trial 0)
    assert table.text(1, "status") == "failed"
    tip = model.index(1, model.column("message")).data(Qt.ItemDataRole.ToolTipRole)
    assert tip == "objective raised ValueError: boom"
    assert model.flags(model.index(3, table.value_column)) & Qt.ItemFlag.ItemIsEditable
    assert not model.flags(model.index(0, table.value_column)) & Qt.ItemFlag.ItemIsEditable
    boundary = model.index(3, model.column("boundary"))
    assert boundary.data() == "a high, b high" and "end of the box" in boundary.data(Qt.ItemDataRole.ToolTipRole)
    assert boundary.data(Qt.ItemDataRole.BackgroundRole) == BOUNDARY_BRUSH
    assert model.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) == BEST_BRUSH  # the best completed trial
    assert model.index(2, 0).data(Qt.ItemDataRole.BackgroundRole) is None
    assert not table.type_value(3, "abc")  # refused: stays in the cell in red, the reason as its tooltip
    value = model.index(3, table.value_column)
    assert value.data() == "abc" and "'abc' is not a finite number" in value.data(Qt.ItemDataRole.ToolTipRole)
    assert "'abc' is not a finite number" in table.window.errors[-1] and not table.window.told
    assert table.type_value(3, "2.5") and table.window.told == [(3, 2.5)] and value.data() == ""
    table.update_trials(trials[:2], ["a", "b"])
    assert table.rowCount() == 2 and table.text(1, "status") == "completed" and resets == [1]


def test_trials_table_sorts_numbers_as_numbers_and_keeps_value_and_metrics_frozen(qtbot):
    from lla_studio.gui.trials_table import TrialsTable

    class Window:
        def show_error(self, message):
            raise AssertionError(message)

        def tell(self, trial_id, value):
            raise AssertionError("nothing typed")

    table = TrialsTable(Window())
    qtbot.addWidget(table)
    names = [f"p{i}" for i in range(19)]
    values = [3.0, 10.0, None, -1.5, 2.0]
    trials = tuple({"id": k, "status": "completed" if v is not None else "failed", "source": "initial",
                    "config": {n: k for n in names}, "value": v, "message": None, "metrics": {"err": 0.1 * k}}
                   for k, v in enumerate(values))
    table.update_trials(trials, names, minimize=True)
    assert table.headers[:2] == ["value", "err"] and table.model_.frozen_columns == 2
    table.sortByColumn(table.value_column, Qt.SortOrder.AscendingOrder)
    shown = [table.proxy.index(r, 0).data() for r in range(table.proxy.rowCount())]
    assert shown == ["-1.5", "2", "3", "10", ""]  # numbers as numbers, the failed trial's empty cell last
    labels = [table.proxy.headerData(r, Qt.Orientation.Vertical) for r in range(table.proxy.rowCount())]
    assert labels == ["3", "4", "0", "1", "2"]
    frozen = table.frozen
    table.resize(1200, 400)
    table.show()
    qtbot.waitExposed(table)
    assert [frozen.isColumnHidden(c) for c in range(4)] == [False, False, True, True]  # value and metric
    assert frozen.model() is table.proxy and frozen.selectionModel() is table.selectionModel()
    table.resize(260, 400)  # a narrow dock: only the value stays frozen, the rest scrolls
    qtbot.waitUntil(lambda: table.frozen_count() == 1, timeout=2_000)
    assert [frozen.isColumnHidden(c) for c in range(3)] == [False, True, True]


def test_log_ei_keeps_its_contrast_next_to_observations(qtbot):
    """log EI dives to about -600 at an observation; slice and map show the top 12 nats."""
    from lla_studio.gui.views import LOG_ACQ_SPAN

    x = np.linspace(1e-4, 1e-1, 60)
    acq = -((x - 0.05) / 0.02) ** 2  # 0 at the top, about -6 at the ends
    acq[10] = -600.0  # an observation on the slice
    base = _snapshot(("lr",), [x], {"optimizer": "adam", "lr": 0.01})
    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names))
    view.update_surface(replace(base, acquisition=acq), SPACE.index("lr"), SPACE)
    y0, y1 = view.acq_plot.viewRange()[1]
    assert -LOG_ACQ_SPAN - 1.0 < y0 < -LOG_ACQ_SPAN and 0.0 < y1 < 1.0

    maps = MapsView()
    qtbot.addWidget(maps)
    axes = [np.linspace(1e-4, 1e-1, 30), np.linspace(1e-4, 1e-1, 20)]
    snap = _snapshot(("lr", "lr"), axes, {"optimizer": "adam", "lr": 0.01})
    grid = -np.add.outer(np.linspace(-2, 2, 20) ** 2, np.linspace(-2, 2, 30) ** 2)  # 0 ... -8
    grid[5, 7] = -600.0
    maps.update_surface(replace(snap, acquisition=grid), (2, 2), None, space=SPACE)
    lo, hi = maps.images["acquisition"].levels
    assert hi == pytest.approx(grid.max(), abs=1e-6) and lo == pytest.approx(grid.max() - LOG_ACQ_SPAN, abs=1e-6)
    assert maps.images["mean"].levels[0] == pytest.approx(snap.mean.min(), abs=1e-6)  # other maps: full range
    # a surface that spans less than the floor keeps its own range
    maps.update_surface(replace(snap, acquisition=np.maximum(grid, -8.0)), (2, 2), None, space=SPACE)
    assert maps.images["acquisition"].levels[0] == pytest.approx(-8.0)


def test_count_axes_have_integer_ticks_only(qtbot):
    from lla_studio.gui.views import HyperparameterView

    view = HyperparameterView()
    qtbot.addWidget(view)
    view.resize(400, 200)
    view.update_timeline(tuple((n, {"covar_module.lengthscale": [0.3 + 0.01 * n], "likelihood.noise_covar.noise": [1e-3]}) for n in (8, 9, 10, 11)))
    view.setXRange(8, 11, padding=0)
    axis = view.getAxis("bottom")
    values = [v for _, level in axis.tickValues(8.0, 11.0, 400) for v in level]
    assert values and all(float(v).is_integer() for v in values)
    assert {8.0, 9.0, 10.0, 11.0} <= set(values)
    # a plain pyqtgraph axis would put ticks at halves here
    plain = [v for _, level in pg.AxisItem("bottom").tickValues(8.0, 11.0, 400) for v in level]
    assert any(not float(v).is_integer() for v in plain)


def test_views_label_the_studys_acquisition_and_scale_linear_ones_fully(qtbot):
    x = np.linspace(1e-4, 1e-1, 60)
    ucb = np.linspace(-700.0, 3.0, 60)  # a linear acquisition keeps its whole range
    base = replace(_snapshot(("lr",), [x], {"optimizer": "adam", "lr": 0.01}), acquisition=ucb, acquisition_label="UCB")
    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names))
    view.update_surface(base, SPACE.index("lr"), SPACE)
    assert view.acq_plot.getAxis("left").labelText == "UCB"
    assert view.acq_plot.viewRange()[1][0] < -700.0
    maps = MapsView()
    qtbot.addWidget(maps)
    axes = [np.linspace(1e-4, 1e-1, 30), np.linspace(1e-4, 1e-1, 20)]
    snap = _snapshot(("lr", "lr"), axes, {"optimizer": "adam", "lr": 0.01})
    grid = np.linspace(-700.0, 3.0, 600).reshape(20, 30)
    maps.update_surface(replace(snap, acquisition=grid, acquisition_label="UCB"), (2, 2), None, space=SPACE)
    assert maps.plots["acquisition"].titleLabel.text == "UCB"
    assert maps.images["acquisition"].levels[0] == pytest.approx(-700.0)
    maps.update_surface(snap, (2, 2), None, space=SPACE)  # back to log EI
    assert maps.plots["acquisition"].titleLabel.text == "log EI"


def test_convergence_rings_model_proposals_on_the_boundary(qtbot):
    from lla_studio.gui.views import ConvergenceView

    view = ConvergenceView()
    qtbot.addWidget(view)
    trials = (
        {"id": 0, "status": "completed", "source": "initial", "value": 5.0, "boundary": ("x1 low",)},  # design: not ringed
        {"id": 1, "status": "completed", "source": "model", "value": 3.0, "boundary": ()},
        {"id": 2, "status": "failed", "source": "model", "value": None, "boundary": ("x2 high",)},  # no value to ring
        {"id": 3, "status": "completed", "source": "model", "value": 4.0, "boundary": ("x1 high",)},
        {"id": 4, "status": "proposed", "source": "model", "value": None, "boundary": ("x1 high",)},
    )
    view.update_trials(trials, minimize=True)
    xs, ys = view.boundary.getData()
    assert list(xs) == [3.0] and list(ys) == [4.0]
    np.testing.assert_array_equal(view.best_curve, [5.0, 3.0, 3.0])


def test_trials_table_starts_in_trial_order_and_a_frozen_header_click_sorts(qtbot):
    from lla_studio.gui.trials_table import TrialsTable

    class Window:
        def show_error(self, message):
            raise AssertionError(message)

        def tell(self, trial_id, value):
            raise AssertionError("nothing typed")

    table = TrialsTable(Window())
    qtbot.addWidget(table)
    trials = tuple({"id": k, "status": "completed", "source": "initial", "config": {"a": k}, "value": v, "message": None}
                   for k, v in enumerate([0.8, -2.0, 0.8, 0.3]))
    table.update_trials(trials, ["a"])
    order = lambda: [table.proxy.headerData(r, Qt.Orientation.Vertical) for r in range(4)]  # noqa: E731
    assert order() == ["0", "1", "2", "3"]
    table._frozen_header_clicked(table.value_column)
    assert order() == ["1", "3", "0", "2"]
    table._frozen_header_clicked(table.value_column)  # again: descending
    assert order()[:2] in (["0", "2"], ["2", "0"]) and order()[-1] == "1"


def test_fixed_values_give_choices_a_combo_box_numbers_their_value_and_ignore_the_wheel(qtbot):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication, QComboBox, QSlider

    view = SliceView()
    qtbot.addWidget(view)
    view.set_parameters(list(SPACE.names), SPACE)
    fixed = view.fixed
    assert isinstance(fixed.editor("optimizer"), QComboBox) and isinstance(fixed.editor("lr"), QSlider)
    assert [fixed.combos["optimizer"].itemText(i) for i in range(3)] == ["sgd", "adam", "rmsprop"]
    fixed.follow.setChecked(False)
    fixed.set_unit("lr", 1.0)
    assert fixed.value_labels["lr"].text() == "0.1"  # the upper bound, in the parameter's own units
    fixed.combos["optimizer"].setCurrentIndex(2)
    assert fixed.values()["optimizer"] == 1.0 and fixed.values()["lr"] == 1.0
    slider = fixed.sliders["lr"]
    before = slider.value()
    wheel = QWheelEvent(QPointF(5, 5), QPointF(5, 5), QPoint(0, 0), QPoint(0, -120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(slider, wheel)
    assert slider.value() == before  # the wheel scrolls the panel, not the value
    fixed.set_columns(2)  # two columns: 3 parameters take two rows
    positions = {fixed.grid.getItemPosition(fixed.grid.indexOf(fixed.editor(n)))[:2] for n in SPACE.names}
    assert len({r for r, _ in positions}) == 2
    view.resize(300, 600)
    view.show()
    qtbot.waitExposed(view)
    assert fixed.columns == 1  # a narrow view: one column, the area as tall as the 3 rows (and the check box)
    assert view.fixed_scroll.height() >= 4 * fixed.editor("lr").sizeHint().height()
