"""Wire codecs with no knowledge of YANG or of who speaks: the one hardened XML reader
(:mod:`.xml`) and RFC 6242 message framing (:mod:`.framing`).

They sit at the bottom of the layers because both directions of NETCONF need them: the
front ends reading clients, and the workload manager's southbound client reading the
network functions it configures.
"""
