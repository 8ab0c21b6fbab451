"""Validates incoming scans. A batch fans out: one envelope per image.

Input payload: {"scan_id": str, "pixels": [64 numbers 0..16]} or {"batch": [<such scans>]}.
"""


def validate(payload):
    if "batch" in payload:
        return [validate(scan) for scan in payload["batch"]]  # a list fans out
    pixels = payload.get("pixels")
    if not isinstance(pixels, list) or len(pixels) != 64:
        raise ValueError(f"scan {payload.get('scan_id')!r}: expected 64 pixels (8x8), got "
                         f"{len(pixels) if isinstance(pixels, list) else type(pixels).__name__}")
    if not all(isinstance(p, (int, float)) and 0 <= p <= 16 for p in pixels):
        raise ValueError(f"scan {payload.get('scan_id')!r}: pixel values must be numbers in 0..16")
    return {**payload, "validated": True}
