"""Calibration metrics (sklearn convention ``f(y_true, y_prob, *, ...)``)."""
