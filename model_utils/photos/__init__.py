"""Reading photos safely: decoding, size limits, EXIF GPS and time."""
