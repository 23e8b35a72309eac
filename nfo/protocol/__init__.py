"""The protocol-neutral layer shared by the RESTCONF and NETCONF front ends.

One copy of every protocol concept: the error table and error encoders
(:mod:`.errors`; the hardened XML reader is :mod:`nfo.wire.xml`), data paths between
libyang's and XML's forms (:mod:`.paths`), times and datastore names
(:mod:`.formats`), the read path with its query knobs (:mod:`.read`), the
accept loop and resource limits (:mod:`.limits`), and what the web UI reads: the
schema digest (:mod:`.uischema`), field values and access verdicts (:mod:`.uidata`).
Front ends parse a request, call these and the datastore, and encode the reply.
"""
