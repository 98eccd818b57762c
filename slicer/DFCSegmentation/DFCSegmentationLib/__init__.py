"""Helpers of the DFCSegmentation module: ``logic_core`` (no Slicer) and ``mrml_io`` (MRML only)."""
