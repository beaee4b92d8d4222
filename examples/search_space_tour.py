"""A tour of the Python API: build a conditional search space, transform it, save a session.

Run: ``python examples/search_space_tour.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from lla_studio.core.session import Session, load_session, save_session
from lla_studio.core.space import ChoiceParameter, Condition, IntegerParameter, RealParameter, SearchSpace
from lla_studio.core.specs import LoopSettings, ObjectiveSpec
from lla_studio.core.transforms import GroupRatioStep, LogStep, OneHotStep, TransformChain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder for the session file")
    args = parser.parse_args()

    sgd_only = (Condition("optimizer", ("sgd",)),)
    space = SearchSpace([
        ChoiceParameter("optimizer", ("adam", "sgd")),
        ChoiceParameter("nesterov", (False, True), conditions=sgd_only),
        RealParameter("momentum", 0.0, 0.99, default=0.9, conditions=sgd_only),
        RealParameter("lr", 1e-4, 1.0, log=True),
        IntegerParameter("width1", 8, 256, log=True),
        IntegerParameter("width2", 8, 256, log=True),
    ])
    chain = TransformChain((OneHotStep("optimizer"), LogStep(("lr",)), GroupRatioStep(("width1", "width2"), group="width")))
    features = chain.plan(space)  # names and bounds; core.features.FeatureMap evaluates it on tensors
    print("features:", ", ".join(features.feature_names))

    for config in space.sample(4, seed=0):
        print(config, "->", space.encode(config).round(3))
    print("choice combinations:", space.choice_combinations())

    session = Session(space, chain, objective=ObjectiveSpec(type="manual"), loop=LoopSettings(budget=20, initial_design=6))
    out = args.out or Path(tempfile.mkdtemp())
    path = save_session(session, out / "tour.json")
    assert load_session(path) == session
    print("saved", path)
    print(session.summary())


if __name__ == "__main__":
    main()
