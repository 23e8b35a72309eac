"""Schema layer: the libyang context, the module set, data trees and codecs."""

from nfo.schema.context import PROTOCOL_MODULES, ModuleInfo, Schema, ietf_dir, module_name_of
from nfo.schema.data import Fmt, Tree, WithDefaults

__all__ = [
    "PROTOCOL_MODULES",
    "Fmt",
    "ModuleInfo",
    "Schema",
    "Tree",
    "WithDefaults",
    "ietf_dir",
    "module_name_of",
]
