"""RFC 6022 monitoring state and RFC 6470 session events of the NETCONF server.

Sessions and their counters change with every message, so they are not pushed
into the operational datastore: the server registers :meth:`Monitor.render` as
the provider of ``/ietf-netconf-monitoring:netconf-state``, computed whenever a
client (NETCONF or RESTCONF) reads it.  Counters live in each session's
:class:`~nfo.netconf.protocol.NetconfContext`; the statistics add the live
sessions' counts to what ended sessions left behind.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nfo.datastore import CONFIG_DATASTORES, Datastore
from nfo.errors import NfoError
from nfo.netconf.messages import server_capabilities
from nfo.netconf.protocol import NetconfContext
from nfo.protocol.formats import format_time

__all__ = ["MONITORING_PATH", "STREAMS_PATH", "Monitor", "SessionInfo"]

log = logging.getLogger(__name__)

MONITORING_PATH = "/ietf-netconf-monitoring:netconf-state"
STREAMS_PATH = "/nc-notifications:netconf"
_MON = "ietf-netconf-monitoring"
_NCN = "ietf-netconf-notifications"
_COUNTERS = ("in_rpcs", "in_bad_rpcs", "out_rpc_errors", "out_notifications")


@dataclass
class SessionInfo:
    """One live NETCONF session as RFC 6022 lists it."""

    ctx: NetconfContext
    username: str
    source_host: str
    login_time: float = field(default_factory=time.time)

    @property
    def session_id(self) -> int:
        return self.ctx.session.id


@dataclass
class Monitor:
    """The monitoring state of one datastore's NETCONF servers: made once by whoever
    composes them (``nfo serve``) and given to each, so all share one session list."""

    ds: Datastore
    start_time: float = field(default_factory=time.time)
    in_bad_hellos: int = 0
    in_sessions: int = 0
    dropped_sessions: int = 0
    sessions: dict[int, SessionInfo] = field(default_factory=dict)
    _ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))
    _servers: int = 0

    def attach(self) -> None:
        """A server starts using this monitor (the first one publishes its data)."""
        if self._servers == 0:
            self.ds.provide_oper(MONITORING_PATH, self.render)
            self.ds.provide_oper(STREAMS_PATH, self.render_streams)
        self._servers += 1

    def detach(self) -> None:
        self._servers -= 1
        if self._servers == 0:
            self.ds.unprovide_oper(MONITORING_PATH)
            self.ds.unprovide_oper(STREAMS_PATH)

    # -- session lifecycle --
    def started(self, info: SessionInfo) -> None:
        self.sessions[info.session_id] = info
        self.in_sessions += 1
        self._publish("netconf-session-start", self._who(info))

    def ended(self, info: SessionInfo, reason: str, killed_by: int | None = None) -> None:
        if self.sessions.pop(info.session_id, None) is None:
            return
        for name in _COUNTERS:
            self._ended[name] += getattr(info.ctx, name)
        if reason in ("dropped", "timeout"):
            self.dropped_sessions += 1
        body = {**self._who(info), "termination-reason": reason}
        if reason == "killed" and killed_by is not None:
            body["killed-by"] = killed_by
        self._publish("netconf-session-end", body)

    def bad_hello(self) -> None:
        self.in_bad_hellos += 1

    @staticmethod
    def _who(info: SessionInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"username": info.username, "session-id": info.session_id}
        if info.source_host:
            out["source-host"] = info.source_host
        return out

    def _publish(self, name: str, body: dict[str, Any]) -> None:
        try:
            self.ds.notifications.publish(json.dumps({f"{_NCN}:{name}": body}), "json")
        except NfoError as e:
            log.error("%s not published: %s", name, e)

    # -- RFC 5277 stream discovery --
    def render_streams(self) -> str:
        streams = []
        for s in self.ds.notifications.describe():
            entry: dict[str, Any] = {"name": s.name, "description": s.description,
                                     "replaySupport": s.replay_support}
            if s.replay_support:
                entry["replayLogCreationTime"] = format_time(
                    self.start_time if s.first_event is None
                    else min(s.first_event, self.start_time))
            streams.append(entry)
        return json.dumps({"nc-notifications:netconf": {"streams": {"stream": streams}}})

    # -- the netconf-state subtree --
    def render(self) -> str:
        schema = self.ds.schema
        locks = self.ds.locks()
        datastores = []
        for name in CONFIG_DATASTORES:
            entry: dict[str, Any] = {"name": name}
            if name in locks:
                sid, when = locks[name]
                entry["locks"] = {"global-lock": {"locked-by-session": sid,
                                                  "locked-time": format_time(when)}}
            datastores.append(entry)
        schemas = [{"identifier": m.name, "version": m.revision or "",
                    "format": f"{_MON}:yang", "namespace": m.namespace,
                    "location": ["NETCONF"]}
                   for m in sorted(schema.modules(), key=lambda m: m.name)]
        sessions = []
        totals = dict(self._ended)
        for info in self.sessions.values():
            counts = {name: getattr(info.ctx, name) for name in _COUNTERS}
            for name, n in counts.items():
                totals[name] += n
            s: dict[str, Any] = {
                "session-id": info.session_id, "transport": f"{_MON}:netconf-ssh",
                "username": info.username, "login-time": format_time(info.login_time),
                **{name.replace("_", "-"): n for name, n in counts.items()}}
            if info.source_host:
                s["source-host"] = info.source_host
            sessions.append(s)
        state = {
            "capabilities": {"capability": server_capabilities(schema)},
            "datastores": {"datastore": datastores},
            "schemas": {"schema": schemas},
            "sessions": {"session": sessions} if sessions else {},
            "statistics": {
                "netconf-start-time": format_time(self.start_time),
                "in-bad-hellos": self.in_bad_hellos,
                "in-sessions": self.in_sessions,
                "dropped-sessions": self.dropped_sessions,
                **{name.replace("_", "-"): n for name, n in totals.items()},
            },
        }
        return json.dumps({f"{_MON}:netconf-state": state})

