"""Reliability diagrams. matplotlib is imported only when a display is drawn."""

from __future__ import annotations

import numpy as np

from calibkit.metrics.calibration import expected_calibration_error, reliability_curve


class ReliabilityDisplay:
    """Reliability diagram: per-bin accuracy against confidence with Clopper-Pearson bars,
    the diagonal of perfect calibration and a histogram of the confidences.

    Build it with :meth:`from_predictions` or :meth:`from_calibrator`, which compute the
    curve with :func:`calibkit.metrics.reliability_curve` and draw it; or construct it from
    a curve and call :meth:`plot`.

    Parameters
    ----------
    curve : ReliabilityCurve or SmoothReliabilityCurve
        Binned (:func:`calibkit.metrics.reliability_curve`) or kernel
        (:func:`calibkit.metrics.smooth_reliability_curve`, drawn by
        :meth:`from_predictions_smooth`).
    ece : float or None, default=None
        Shown in the legend when given.
    name : str or None, default=None
        Legend label.

    Attributes
    ----------
    ax_ : matplotlib Axes
        The reliability axes.
    ax_hist_ : matplotlib Axes or None
        The confidence histogram (below ``ax_`` when the display made the figure, an inset
        when ``ax`` was given).
    figure_ : matplotlib Figure
    line_ : matplotlib Line2D
    """

    def __init__(self, curve, *, ece=None, name=None):
        self.curve = curve
        self.ece = ece
        self.name = name

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_prob,
        *,
        n_bins=15,
        strategy="uniform",
        mode="top_label",
        pos_label=None,
        class_index=None,
        sample_weight=None,
        labels=None,
        confidence_level=0.95,
        name=None,
        ax=None,
        show_histogram=True,
        **kwargs,
    ):
        """Compute the curve from predicted probabilities and draw it.

        ``mode="classwise"`` draws one class (``pos_label`` / ``class_index``) or, with
        neither, all classes pooled. The legend shows the ECE of the same bins
        (:func:`calibkit.metrics.expected_calibration_error`, L1) unless one class is drawn.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            Labels, encoded as in :func:`calibkit.metrics.expected_calibration_error`.
        y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
            Probabilities: 1-D is P(positive); 2-D rows sum to 1.
        n_bins : int, default=15
        strategy : {"uniform", "quantile"}, default="uniform"
            Equal-width or equal-mass bins.
        mode : {"top_label", "classwise", "binary"}, default="top_label"
            Which confidence and outcome are binned.
        pos_label : label or None, default=None
            ``mode="classwise"``: the class to draw, as a label.
        class_index : int or None, default=None
            ``mode="classwise"``: the class to draw, as a column of ``y_prob``.
        sample_weight : array-like of shape (n_samples,), default=None
        labels : array-like of shape (n_classes,), default=None
            The label of each column of ``y_prob``.
        confidence_level : float, default=0.95
            Coverage of the Clopper-Pearson error bars.
        name : str or None, default=None
            Legend label (``"model"`` when None).
        ax : matplotlib Axes or None, default=None
            Where to draw; None makes a new figure.
        show_histogram : bool, default=True
            Also draw the histogram of the confidences (a panel below, or an inset of
            ``ax``).
        **kwargs : dict
            Passed to ``ax.errorbar``.

        Returns
        -------
        ReliabilityDisplay
            The display, drawn (``ax_``, ``ax_hist_``, ``figure_``, ``line_`` set).

        See Also
        --------
        calibkit.metrics.reliability_curve : The curve that is drawn, with these arguments.
        """
        common = dict(n_bins=n_bins, strategy=strategy, mode=mode, sample_weight=sample_weight,
                      labels=labels)
        curve = reliability_curve(
            y_true, y_prob, pos_label=pos_label, class_index=class_index,
            confidence_level=confidence_level, **common,
        )
        ece = None
        if pos_label is None and class_index is None:
            ece = expected_calibration_error(y_true, y_prob, **common)
        disp = cls(curve, ece=ece, name=name)
        return disp.plot(ax=ax, show_histogram=show_histogram, **kwargs)

    @classmethod
    def from_predictions_smooth(
        cls,
        y_true,
        y_prob,
        *,
        bandwidth=None,
        mode="top_label",
        sample_weight=None,
        labels=None,
        name=None,
        ax=None,
        show_histogram=True,
        **kwargs,
    ):
        """The kernel reliability diagram of smooth ECE (Błasiok & Nakkiran, 2024).

        The curve is :func:`calibkit.metrics.smooth_reliability_curve` (kernel-smoothed
        observed frequency against confidence, the bandwidth that of the smooth ECE), drawn
        as a line whose width follows the density of the predictions; the histogram panel
        shows that density. The legend gives the smooth ECE and the bandwidth.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            Labels, encoded as in :func:`calibkit.metrics.expected_calibration_error`.
        y_prob : array-like of shape (n_samples,) or (n_samples, n_classes)
            Probabilities.
        bandwidth : float or None, default=None
            The kernel's standard deviation; None takes the smooth ECE's fixed point.
        mode : {"top_label", "binary"}, default="top_label"
            Which confidence and outcome are smoothed.
        sample_weight : array-like of shape (n_samples,), default=None
        labels : array-like of shape (n_classes,), default=None
            The label of each column of ``y_prob``.
        name : str or None, default=None
            Legend label (``"model"`` when None).
        ax : matplotlib Axes or None, default=None
            Where to draw; None makes a new figure.
        show_histogram : bool, default=True
            Also draw the density of the predictions (a panel below, or an inset of ``ax``).
        **kwargs : dict
            Passed to ``ax.plot`` for the curve (default colour ``"tab:red"``).

        Returns
        -------
        ReliabilityDisplay
            The display, drawn, with ``ece`` the smooth ECE.
        """
        from calibkit.metrics.smooth import smooth_reliability_curve

        curve = smooth_reliability_curve(y_true, y_prob, bandwidth=bandwidth, mode=mode,
                                         sample_weight=sample_weight, labels=labels)
        disp = cls(curve, ece=curve.error, name=name)
        return disp.plot(ax=ax, show_histogram=show_histogram, **kwargs)

    @classmethod
    def from_calibrator(cls, calibrator, scores, y, **kwargs):
        """Draw the reliability of ``calibrator.predict_proba(scores)`` against ``y``.

        Parameters
        ----------
        calibrator : Calibrator
            A fitted calibrator (anything with ``predict_proba``).
        scores : array-like of shape (n_samples,) or (n_samples, n_classes)
            Scores to calibrate, of the kind the calibrator was fitted on.
        y : array-like of shape (n_samples,)
            True labels.
        **kwargs : dict
            Arguments of :meth:`from_predictions`; ``labels`` defaults to
            ``calibrator.classes_`` and ``name`` to the calibrator's class name.

        Returns
        -------
        ReliabilityDisplay
            The display, drawn.
        """
        proba = np.asarray(calibrator.predict_proba(scores))
        if getattr(calibrator, "classes_", None) is not None:
            kwargs.setdefault("labels", calibrator.classes_)
        kwargs.setdefault("name", type(calibrator).__name__)
        return cls.from_predictions(y, proba, **kwargs)

    def plot(self, *, ax=None, show_histogram=True, name=None, **kwargs):
        """Draw on ``ax`` (a new figure when None) and return ``self``.

        Parameters
        ----------
        ax : matplotlib Axes or None, default=None
            Where to draw; None makes a new figure (two panels with the histogram).
        show_histogram : bool, default=True
            Also draw the histogram of the confidences (or the density of a smooth curve):
            a panel below a new figure, or an inset of a given ``ax``.
        name : str or None, default=None
            Legend label; None uses the display's ``name`` (``"model"`` when that is None).
        **kwargs : dict
            Passed to ``ax.errorbar`` (binned curve; defaults ``marker="o"``, ``capsize=3``)
            or ``ax.plot`` (smooth curve).

        Returns
        -------
        self : ReliabilityDisplay
            With ``ax_``, ``ax_hist_``, ``figure_`` and ``line_`` set.
        """
        import matplotlib.pyplot as plt

        c = self.curve
        name = name if name is not None else self.name
        if ax is None and show_histogram:
            fig, (ax, ax_hist) = plt.subplots(
                2, 1, figsize=(5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
            )
        elif ax is None:
            fig, ax = plt.subplots(figsize=(5, 5))
            ax_hist = None
        else:
            fig = ax.figure
            ax_hist = ax.inset_axes([0.06, 0.62, 0.38, 0.32]) if show_histogram else None
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        label = name or "model"
        if hasattr(c, "mesh"):  # a kernel (smooth) reliability curve
            return self._plot_smooth(fig, ax, ax_hist, label, **kwargs)
        if self.ece is not None:
            label = f"{label} (ECE = {self.ece:.4f})"
        yerr = np.vstack([c.accuracy - c.ci_lower, c.ci_upper - c.accuracy])
        kwargs = {"marker": "o", "capsize": 3, "label": label, **kwargs}
        container = ax.errorbar(c.mean_confidence, c.accuracy, yerr=np.clip(yerr, 0, None),
                                **kwargs)
        self.line_ = container.lines[0]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("observed frequency")
        ax.legend(loc="lower right")
        if ax_hist is not None:
            width = c.bin_upper - c.bin_lower
            ax_hist.bar(c.bin_lower, c.count / c.count.sum(), width=width, align="edge",
                        edgecolor="black", color="tab:blue", alpha=0.6)
            ax_hist.set_xlim(0, 1)
            ax_hist.set_ylabel("fraction")
            ax_hist.set_xlabel("confidence")
        else:
            ax.set_xlabel("confidence")
        self.ax_, self.ax_hist_, self.figure_ = ax, ax_hist, fig
        return self

    def _plot_smooth(self, fig, ax, ax_hist, label, **kwargs):
        c = self.curve
        label = f"{label} (smECE = {c.error:.4f}, bandwidth {c.bandwidth:.3f})"
        (self.line_,) = ax.plot(c.mesh, c.accuracy, label=label, **{"color": "tab:red",
                                                                    **kwargs})
        # line width follows the density of the predictions, as in relplot's diagrams
        width = c.density / max(c.density.max(), 1e-12)
        for i in range(len(c.mesh) - 1):
            ax.plot(c.mesh[i:i + 2], c.accuracy[i:i + 2], color=self.line_.get_color(),
                    linewidth=0.5 + 4.0 * width[i], solid_capstyle="round")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("observed frequency (kernel-smoothed)")
        ax.legend(loc="lower right")
        if ax_hist is not None:
            ax_hist.fill_between(c.mesh, c.density, color="tab:blue", alpha=0.5)
            ax_hist.set_xlim(0, 1)
            ax_hist.set_ylabel("density")
            ax_hist.set_xlabel("confidence")
        else:
            ax.set_xlabel("confidence")
        self.ax_, self.ax_hist_, self.figure_ = ax, ax_hist, fig
        return self
