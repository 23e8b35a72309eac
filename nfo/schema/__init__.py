"""Schema layer: the libyang context, the module set, data trees and codecs.

The only code that touches libyang's C API; everything above it sees typed
objects: :class:`Schema` (the module set), :class:`SNode` (schema nodes),
:class:`SType` (their types), :class:`Tree` (an owned data tree), :class:`Node`
(a data node borrowed from a tree), :class:`Operation` (an RPC, action, reply
or notification tree) and :class:`NfModules` (an NF's own modules, apart).
"""

from nfo.schema.context import (
    PROTOCOL_MODULES,
    AccessMarks,
    ModuleInfo,
    Schema,
    ietf_dir,
    module_name_of,
)
from nfo.schema.data import Fmt, Parse, Tree, WithDefaults, json_text, print_node
from nfo.schema.dnode import Node
from nfo.schema.nfmodules import ModuleText, NfModules, render
from nfo.schema.ops import Operation, OpKind
from nfo.schema.paths import Step, canonical_path, parse_path, path_prefixes
from nfo.schema.snode import DATA_KINDS, Kind, SNode
from nfo.schema.stype import SType

__all__ = [
    "DATA_KINDS",
    "PROTOCOL_MODULES",
    "AccessMarks",
    "Fmt",
    "Kind",
    "ModuleInfo",
    "ModuleText",
    "NfModules",
    "Node",
    "OpKind",
    "Operation",
    "Parse",
    "SNode",
    "SType",
    "Schema",
    "Step",
    "Tree",
    "WithDefaults",
    "canonical_path",
    "ietf_dir",
    "json_text",
    "module_name_of",
    "parse_path",
    "path_prefixes",
    "print_node",
    "render",
]
