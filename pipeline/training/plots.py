"""The loss-curve helpers under the name training has always imported them by; they live in `pipeline.plots`, below
both training and `pipeline.visualize`."""

from ..plots import plot_loss_curve, read_metrics

__all__ = ["plot_loss_curve", "read_metrics"]
