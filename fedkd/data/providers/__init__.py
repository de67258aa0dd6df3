"""Node-local private-data providers, one file each, found by name in ``PROVIDER_REGISTRY``.

Importing this package imports every module in it and every ``fedkd.data_providers``
entry point, which fills the registry: adding a provider is adding one file.
"""

import sys

from fedkd.data.private import PrivateData
from fedkd.data.providers.base import (
    PROVIDER_REGISTRY,
    DataValidationError,
    PrivateDataProvider,
    make_provider,
    register_provider,
)
from fedkd.plugins import import_package_modules, load_entry_points

import_package_modules(sys.modules[__name__])
load_entry_points("fedkd.data_providers")

__all__ = [
    "PROVIDER_REGISTRY",
    "DataValidationError",
    "PrivateData",
    "PrivateDataProvider",
    "make_provider",
    "register_provider",
]
