"""Detectors: pure functions from (url, content type, body) to findings. No mitmproxy, no storage.

The live addon, `consentwatch replay` and the tests all call `Detector.detect`, so what is tested is
what runs.
"""

from .engine import DetectionError, Detector, Observation

__all__ = ["DetectionError", "Detector", "Observation"]
