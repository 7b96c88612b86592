"""Deployment: export a trained backbone to ONNX (:func:`export_onnx`)."""

from tailface.deploy.onnx_export import ExportResult, export_onnx

__all__ = ["ExportResult", "export_onnx"]
