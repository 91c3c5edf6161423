"""COCO adapters for calibkit: matching, detection calibration metrics, LRP-optimal
thresholds and class-wise detector calibration."""
