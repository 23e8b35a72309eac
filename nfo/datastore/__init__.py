"""State layer: NMDA datastores, transactions, subscriptions, notifications.

Front ends and the workload manager use only what this package exports.
"""

from nfo.datastore.datastore import Datastore
from nfo.datastore.nacm import Access, Identity, Nacm
from nfo.datastore.names import CONFIG_DATASTORES, DATASTORES
from nfo.datastore.notifications import (
    Notification,
    NotificationHub,
    NotificationSubscription,
    ReplayComplete,
    Stream,
    StreamInfo,
    SubscriptionComplete,
)
from nfo.datastore.session import ReadAs, RpcCall, RpcHandler, Session
from nfo.datastore.storage import SqliteStorage, Storage
from nfo.datastore.subscriptions import ChangeEvent, ChangeSubscription
from nfo.datastore.transaction import CommitInfo, Precondition, WriteView
from nfo.schema.changes import (
    Change,
    ChangeCreated,
    ChangeDeleted,
    ChangeModified,
    ChangeMoved,
)

__all__ = [
    "CONFIG_DATASTORES",
    "DATASTORES",
    "Access",
    "Change",
    "ChangeCreated",
    "ChangeDeleted",
    "ChangeEvent",
    "ChangeModified",
    "ChangeMoved",
    "ChangeSubscription",
    "CommitInfo",
    "Datastore",
    "Identity",
    "Nacm",
    "Notification",
    "NotificationHub",
    "NotificationSubscription",
    "Precondition",
    "ReadAs",
    "ReplayComplete",
    "RpcCall",
    "RpcHandler",
    "Session",
    "SqliteStorage",
    "Storage",
    "Stream",
    "StreamInfo",
    "SubscriptionComplete",
    "WriteView",
]
