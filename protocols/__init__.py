"""Sans-I/O device protocol codecs, one module per protocol (see ``registry``)."""
