"""The wire: library-side payload types, protobuf serde, and validation.

Generated ``*_pb2`` modules stay behind this package; callers see only the dataclasses in
``fedkd.wire.types`` and the ``*_to_bytes`` / ``*_from_bytes`` functions.
"""

SCHEMA_VERSION = 1
