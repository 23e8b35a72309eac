"""The southbound side: nfo as a NETCONF client of the network functions it configures."""

__all__: list[str] = []
