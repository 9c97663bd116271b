"""Every key credrot writes in Redis, and the Lua scripts that change them.

A script runs atomically in the server, so two machines marking one account at the same
moment both land: a deadline only ever moves later, a success clears only marks recorded
before the call that succeeded had started, counters add up. Each change bumps the
pool's revision and records it per account, so a machine fetches only what changed since
it last looked.

Keys, for ``P = <prefix>:<tool>`` (``credrot:qwen`` by default):

======================  =====  ==========================================================
``P:rev``               str    the pool's revision, +1 per change
``P:epoch``             str    a random id set when the keys were first written: a new
                               one means the store was emptied (restart, flush)
``P:changes``           zset   account number -> revision of its last change
``P:acct:<n>``          hash   marks per window (``<status>_until``/``_at``/``_reason``),
                               counters (``calls``, ``successes``, ...), ``day``,
                               ``calls_today``, ``last_used``, ``last_outcome``; each
                               quota window's mark as ``w:<name>:until``/``:seen``/
                               ``:signal``/``:reason``/``:ends`` (by every call, the
                               deadline only later); whole windows pushed by ``credrot
                               store push`` as ``win:<name>`` (JSON) and ``win:<name>:t``
                               (its newest time). A window's usage counters (``calls``,
                               ``tokens``) and the tool's readings stay per machine
``P:cred:<n>``          hash   ``gen`` (the credential's generation), ``blob`` (Fernet)
``P:inflight:<n>``      zset   lease id -> its expiry (ms): calls running on the account
``P:refresh:<n>``       str    the refresh lease's holder, ``SET NX PX``
``P:fence:<n>``         str    the refresh lease's fencing generation, +1 per grant
``<prefix>:keycheck``   str    the key check value (Fernet of a constant)
======================  =====  ==========================================================

The scripts touch keys they compute from the prefix, so the store is a single Redis or
Valkey server (or a primary with replicas), not a cluster.
"""

from __future__ import annotations

#: Statuses that carry a deadline, and those that do not; the order is their precedence.
TIMED = ("exhausted", "rate_limited")
UNTIMED = ("disabled", "needs_login")
COUNTERS = (
    "calls",
    "successes",
    "quota_hits",
    "rate_limits",
    "auth_failures",
    "errors",
    "switches_to",
)


class Keys:
    def __init__(self, prefix: str, tool: str) -> None:
        self.base = f"{prefix}:{tool}:"
        self.rev = self.base + "rev"
        self.changes = self.base + "changes"
        self.epoch = self.base + "epoch"
        self.keycheck = f"{prefix}:keycheck"

    def acct(self, index: int) -> str:
        return f"{self.base}acct:{index}"

    def cred(self, index: int) -> str:
        return f"{self.base}cred:{index}"

    def inflight(self, index: int) -> str:
        return f"{self.base}inflight:{index}"

    def refresh(self, index: int) -> str:
        return f"{self.base}refresh:{index}"

    def fence(self, index: int) -> str:
        return f"{self.base}fence:{index}"


_BUMP = """
local function bump(index)
  local r = redis.call('INCR', KEYS[1])
  redis.call('ZADD', KEYS[2], r, index)
  return r
end
"""

#: A window's mark on hash ``h``: the deadline (with its signal, reason and period end)
#: only moves later, the moment it was seen too; a clear takes only a mark seen before
#: ``at`` (a success clears only marks made before its call began).
_WINDOW = """
local function wmark(h, name, untl, seen, signal, reason, ends)
  local f = 'w:' .. name .. ':'
  if tonumber(untl) > tonumber(redis.call('HGET', h, f .. 'until') or '0') then
    redis.call('HSET', h, f .. 'until', untl, f .. 'signal', signal, f .. 'reason', reason,
               f .. 'ends', ends)
  end
  if tonumber(seen) > tonumber(redis.call('HGET', h, f .. 'seen') or '0') then
    redis.call('HSET', h, f .. 'seen', seen)
  end
end
local function wclear(h, name, at)
  local f = 'w:' .. name .. ':'
  local seen = redis.call('HGET', h, f .. 'seen')
  if seen and tonumber(seen) < at then
    redis.call('HDEL', h, f .. 'until', f .. 'seen', f .. 'signal', f .. 'reason', f .. 'ends')
  end
end
"""

#: KEYS: rev, changes, epoch. ARGV: seen revision, key base, a new epoch, the epoch seen.
#: -> {rev, epoch, reset?, n1, hash1, gen1, n2, ...} for accounts changed after ``seen``
#: (all of them when the store is not the one seen: emptied by a restart, or new).
PULL = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local rev = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1])
local since = seen
local reset = 0
if epoch ~= ARGV[4] then since = -1; reset = 1 end
if rev == seen and reset == 0 then return {rev, epoch, 0} end
local out = {rev, epoch, reset}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. since, '+inf')) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', ARGV[2] .. 'acct:' .. id)
  out[#out + 1] = redis.call('HGET', ARGV[2] .. 'cred:' .. id, 'gen') or ''
end
return out
"""

#: KEYS: rev, changes, acct. ARGV: index, now, op (none|mark|success|clear), status,
#: until, at, reason, day, last_used, last_outcome, one delta per COUNTERS name, then
#: per window whose mark changed: name, mark|clear, until, seen (a clear's ``at``),
#: signal, reason, ends. -> {rev, the account's hash}.
APPLY = (
    _BUMP
    + _WINDOW
    + """
local h = KEYS[3]
local op, status, untl, at = ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local timed = {exhausted = true, rate_limited = true}
local all = {'exhausted', 'rate_limited', 'disabled', 'needs_login'}
if op == 'mark' then
  local cur_at = tonumber(redis.call('HGET', h, status .. '_at') or '0')
  if timed[status] then
    local cur = tonumber(redis.call('HGET', h, status .. '_until') or '0')
    if untl > cur then
      redis.call('HSET', h, status .. '_until', ARGV[5], status .. '_reason', ARGV[7])
    end
  else
    redis.call('HSET', h, status .. '_reason', ARGV[7])
  end
  if at > cur_at then redis.call('HSET', h, status .. '_at', ARGV[6]) end
elseif op == 'success' or op == 'clear' then
  for _, s in ipairs(all) do
    local cur_at = redis.call('HGET', h, s .. '_at')
    if cur_at and (op == 'clear' or tonumber(cur_at) < at) then
      redis.call('HDEL', h, s .. '_at', s .. '_until', s .. '_reason')
    end
  end
end
local names = {'calls', 'successes', 'quota_hits', 'rate_limits', 'auth_failures',
               'errors', 'switches_to'}
for i, name in ipairs(names) do
  local d = tonumber(ARGV[10 + i])
  if d ~= 0 then redis.call('HINCRBY', h, name, d) end
end
local calls = tonumber(ARGV[11])
if ARGV[8] ~= '' and calls ~= 0 then
  if redis.call('HGET', h, 'day') == ARGV[8] then
    redis.call('HINCRBY', h, 'calls_today', calls)
  else
    redis.call('HSET', h, 'day', ARGV[8], 'calls_today', calls)
  end
end
if ARGV[9] ~= '' then
  local last = tonumber(redis.call('HGET', h, 'last_used') or '0')
  if tonumber(ARGV[9]) >= last then
    redis.call('HSET', h, 'last_used', ARGV[9], 'last_outcome', ARGV[10])
  end
end
for i = 18, #ARGV - 6, 7 do
  if ARGV[i + 1] == 'mark' then
    wmark(h, ARGV[i], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
  else
    wclear(h, ARGV[i], tonumber(ARGV[i + 3]))
  end
end
redis.call('HSETNX', h, 'calls', 0)
local r = bump(ARGV[1])
return {r, redis.call('HGETALL', h)}
"""
)

#: KEYS: rev, changes, cred. ARGV: index, expected gen, blob, mode (cas|create).
#: -> {1, gen, rev} when written, {0, gen now} when refused (the store holds another one).
PUT_CRED = (
    _BUMP
    + """
local cur = tonumber(redis.call('HGET', KEYS[3], 'gen') or '-1')
local expected = tonumber(ARGV[2])
local gen
if ARGV[4] == 'create' then
  if cur >= 0 then return {0, cur} end
  gen = expected
else
  if cur >= 0 and cur ~= expected then return {0, cur} end
  if cur < 0 then cur = expected end
  gen = cur + 1
end
redis.call('HSET', KEYS[3], 'gen', gen, 'blob', ARGV[3])
return {1, gen, bump(ARGV[1])}
"""
)

#: KEYS: inflight. ARGV: lease id, now ms, ttl ms. -> calls in flight, this one included.
BEGIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
"""

#: KEYS: refresh, fence. ARGV: holder, ttl ms. -> the fencing generation, or 0 if held.
TAKE_REFRESH = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

#: KEYS: refresh. ARGV: holder, ttl ms. -> 1 when extended, 0 when it was no longer ours.
RENEW_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

#: KEYS: refresh. ARGV: holder. -> 1 when released, 0 when it was no longer ours.
GIVE_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS: rev, changes, acct. ARGV: index, status, until, at, reason, day, calls_today,
#: last_used, last_outcome, the COUNTERS values, then (name, JSON, time) per window.
#: A whole account from ``credrot store push``: run twice, it counts nothing twice —
#: counters take the larger value, a deadline only moves later, a window is taken when
#: its newest time is later than the one held (and its mark as ``APPLY`` keeps it).
#: -> {rev, the account's hash}.
PUSH_ACCT = (
    _BUMP
    + _WINDOW
    + """
local h = KEYS[3]
local status, untl, at = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local timed = {exhausted = true, rate_limited = true}
if status ~= 'ready' then
  local cur_at = tonumber(redis.call('HGET', h, status .. '_at') or '0')
  if timed[status] then
    local cur = tonumber(redis.call('HGET', h, status .. '_until') or '0')
    if untl > cur then
      redis.call('HSET', h, status .. '_until', ARGV[3], status .. '_reason', ARGV[5])
    end
  elseif cur_at == 0 then
    redis.call('HSET', h, status .. '_reason', ARGV[5])
  end
  if at > cur_at then redis.call('HSET', h, status .. '_at', ARGV[4]) end
end
local names = {'calls', 'successes', 'quota_hits', 'rate_limits', 'auth_failures',
               'errors', 'switches_to'}
for i, name in ipairs(names) do
  local v = tonumber(ARGV[9 + i])
  if v > tonumber(redis.call('HGET', h, name) or '0') then redis.call('HSET', h, name, v) end
end
local day = redis.call('HGET', h, 'day') or ''
if ARGV[6] > day then
  redis.call('HSET', h, 'day', ARGV[6], 'calls_today', ARGV[7])
elseif ARGV[6] == day then
  local today = tonumber(redis.call('HGET', h, 'calls_today') or '0')
  if tonumber(ARGV[7]) > today then redis.call('HSET', h, 'calls_today', ARGV[7]) end
end
if ARGV[8] ~= '' and tonumber(ARGV[8]) > tonumber(redis.call('HGET', h, 'last_used') or '0') then
  redis.call('HSET', h, 'last_used', ARGV[8], 'last_outcome', ARGV[9])
end
for i = 17, #ARGV - 2, 3 do
  local f = 'win:' .. ARGV[i]
  if tonumber(ARGV[i + 2]) > tonumber(redis.call('HGET', h, f .. ':t') or '-1') then
    redis.call('HSET', h, f, ARGV[i + 1], f .. ':t', ARGV[i + 2])
  end
  local ok, w = pcall(cjson.decode, ARGV[i + 1])
  if ok and type(w) == 'table' and tonumber(w['until']) then
    local function num(v) return string.format('%.6f', tonumber(v) or 0) end
    wmark(h, ARGV[i], num(w['until']), num(w['seen']), tostring(w['signal'] or ''),
          tostring(w['reason'] or ''), num(w['ends'] or w['until']))
  end
end
redis.call('HSETNX', h, 'calls', 0)
local r = bump(ARGV[1])
return {r, redis.call('HGETALL', h)}
"""
)
