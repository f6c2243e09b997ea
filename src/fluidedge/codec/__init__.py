"""Sans-I/O protocol codecs: bytes in, frozen dataclasses out."""
