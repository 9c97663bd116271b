"""One pool shared by many machines, kept in Redis (or Valkey: same protocol).

The local file pool stays the source every operation reads and writes; this package
mirrors it into Redis inside each locked transaction (:class:`~credrot.pool.store.FileStore`
calls :class:`~credrot.remote.shared.SharedPool` after its load and before its save), so
every machine sees a spent account, a refreshed token and the counters of all others,
and keeps working from its own files while Redis is unreachable.

Modules: ``settings`` (which store, which key), ``client`` (the connection and its one-line
errors), ``scripts`` (key names and the Lua that changes them), ``seal`` (Fernet
encryption of credentials), ``merge`` (an account's Redis hash <-> its local state),
``shared`` (the per-transaction sync), ``creds`` (credential generations), ``leases``
(in-flight and refresh leases), ``sync`` (``credrot store push|pull``), ``check`` (what
``doctor`` and ``credrot store status`` ask) and ``words`` (what they say).
"""
