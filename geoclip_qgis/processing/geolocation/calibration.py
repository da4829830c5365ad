"""A run's temperature fit, written and said: the maths and the held-out coverage check are
``model_utils.evaluation.temperature_check``; here the record becomes calibration.json and one log line."""

from __future__ import annotations

import json
from pathlib import Path


def calibrate(samples: list, support_latlon, options, work: Path, feedback) -> None:
    """Fit a temperature on the run's geotagged photos (``FitSample``s), check it on held-out ones with the run's
    raster ``options``, save calibration.json in ``work`` and say the result (or why there is none)."""
    from model_utils.evaluation.temperature_check import check_temperature

    try:
        check = check_temperature(samples, support_latlon, options)
    except ValueError as exc:
        feedback.reportError(f"No temperature was fitted: {exc}.", False)
        return
    (work / "calibration.json").write_text(json.dumps(check.record(), indent=2), encoding="utf-8")
    before, after = check.coverage_before, check.coverage_after
    shares = "; ".join(f"{float(level):.0%}: {before[level]:.0%} -> {after[level]:.0%}" for level in before)
    feedback.pushInfo(f"Temperature fitted on {check.fit.n_used} geotagged photo(s): {check.fit.temperature:.3g} "
                      f"(use it as 'Temperature' in later runs; saved in calibration.json). True positions inside "
                      f"the credible regions of {check.held_out} held-out photo(s), before -> after: {shares}.")
