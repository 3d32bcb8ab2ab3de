"""The fleet gate's one Lua script: every change of an account's shared state is one atomic
script run in Redis, one round trip, no read-then-write race between processes.

Keys (one hash tag, so one Redis Cluster slot): ``leases`` (sorted set: place id -> expiry, ms),
``queue`` (sorted set: waiter id -> arrival number; calls turned away by a 429 sort first),
``alive`` (waiter id -> expiry: a killed worker's waiters go), ``state`` (hash: the learned
limit, the slow start's window, the named limit and its trust window), ``defer`` (hash: a
turned-away waiter -> the time its ``retry_after`` passes), ``seq`` (the arrival counter). A
waiter is woken by a push of its id on its process's list ``wake:<process>``, which one thread
of that process waits on (BLPOP): no polling, one blocked connection per process. Time is the Redis
server's, so machines with skewed clocks agree.

The controller's rules are :class:`modelslab_core._limit.AdaptiveLimit`'s, written again here
(its constants come in as arguments).
"""

from __future__ import annotations

__all__ = ["SCRIPT"]

SCRIPT = r"""
local leases, queue, alive, state, defer, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local prefix, op, id = ARGV[1], ARGV[8], ARGV[9]
local lease_ms, alive_ms, cold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local trust_ms, slowdown, pinned = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function dequeue(waiter)
  redis.call('ZREM', queue, waiter)
  redis.call('ZREM', alive, waiter)
  redis.call('HDEL', defer, waiter)
end

redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do dequeue(gone) end

local function wake_key(waiter)
  return prefix .. 'wake:' .. (string.match(waiter, '^([^:]*):') or waiter)
end

local function num(field)
  return tonumber(redis.call('HGET', state, field))
end

local function limit_now()
  if pinned > 0 then return pinned end
  local limit = num('limit')
  if limit then return math.max(1, math.floor(limit)) end
  return math.floor(num('window') or cold)
end

local function grant()
  while redis.call('ZCARD', leases) < limit_now() do
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    if not head then return end
    local due = tonumber(redis.call('HGET', defer, head))
    if due and due > now then return end
    dequeue(head)
    redis.call('ZADD', leases, now + lease_ms, head)
    local wake = wake_key(head)
    redis.call('RPUSH', wake, head)
    redis.call('PEXPIRE', wake, alive_ms + lease_ms)
  end
end

local function on_accepted(in_flight, waiting)
  if pinned > 0 or num('limit') then return end
  local window = num('window') or cold
  if waiting > 0 or in_flight >= math.floor(window) then
    redis.call('HSET', state, 'window', window + 1)
  end
end

local function on_success(in_flight, waiting)
  if pinned > 0 then return end
  local limit = num('limit')
  if not limit then return on_accepted(in_flight, waiting) end
  if waiting == 0 and in_flight < math.floor(limit) then return end
  local named = num('named')
  local ceiling = nil
  if named and now < (num('named_until') or 0) then ceiling = named end
  local quiet = redis.call('HINCRBY', state, 'quiet', 1)
  local step = 1.0 / limit
  if ceiling == nil or limit >= ceiling or quiet < 2 * limit then step = step / slowdown end
  local grown = limit + step
  if ceiling and grown > ceiling then grown = ceiling end
  if grown > limit then redis.call('HSET', state, 'limit', tostring(grown)) end
end

local function on_rate_limited(in_flight, named)
  if named then
    redis.call('HSET', state, 'named', named, 'named_until', now + trust_ms)
  end
  redis.call('HSET', state, 'quiet', 0)
  if pinned > 0 then return end
  local new = math.max(in_flight - 1, 1)
  if named and named < new then new = named end
  local limit = num('limit')
  if limit and math.floor(limit) < new then new = math.floor(limit) end
  redis.call('HSET', state, 'limit', new)
end

local function keep()
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, 86400000) end
end

local function holds(waiter)  -- 1 when the place is the waiter's: its wake-up is not needed
  if not redis.call('ZSCORE', leases, waiter) then return 0 end
  redis.call('LREM', wake_key(waiter), 0, waiter)
  return 1
end

local function touch(key, ms)  -- the ids in ARGV[9..] are still there
  for i = 9, #ARGV do redis.call('ZADD', key, 'XX', now + ms, ARGV[i]) end
end

if op == 'acquire' then
  if holds(id) == 1 then return 1 end
  local head_ms = tonumber(ARGV[10])
  if not redis.call('ZSCORE', queue, id) then
    local number = redis.call('INCR', seq)
    if head_ms >= 0 then
      redis.call('ZADD', queue, number - 1e15, id)
      redis.call('HSET', defer, id, now + head_ms)
    else
      redis.call('ZADD', queue, number, id)
    end
  end
  redis.call('ZADD', alive, now + alive_ms, id)
  grant()
  keep()
  return holds(id)
elseif op == 'release' then
  local outcome = ARGV[10]
  if redis.call('ZSCORE', leases, id) then
    local in_flight = redis.call('ZCARD', leases)
    local waiting = redis.call('ZCARD', queue)
    if outcome == 'answered' then
      on_success(in_flight, waiting)
    elseif outcome == 'rate_limited' then
      on_rate_limited(in_flight, tonumber(ARGV[11]))
    end
    redis.call('ZREM', leases, id)
  end
  if outcome == 'rate_limited' then
    redis.call('HINCRBY', state, 'rate_limited', 1)
  else
    -- A place of the account freed: the calls it turned away may go at once.
    redis.call('DEL', defer)
  end
  grant()
  keep()
  return 1
elseif op == 'accepted' then
  on_accepted(redis.call('ZCARD', leases), redis.call('ZCARD', queue))
  grant()
  return 1
elseif op == 'abandon' then
  dequeue(id)
  redis.call('LREM', wake_key(id), 0, id)
  local held = redis.call('ZSCORE', leases, id) and 1 or 0
  grant()
  return held
elseif op == 'renew' then
  touch(leases, lease_ms)
  return 1
elseif op == 'alive' then
  touch(alive, alive_ms)
  grant()  -- places of expired leases (a killed worker's) go to the waiters
  return 1
elseif op == 'stats' then
  local named = num('named') or -1
  return {redis.call('ZCARD', leases), redis.call('ZCARD', queue), limit_now(),
          num('limit') and 1 or 0, named, num('rate_limited') or 0}
end
return redis.error_reply('unknown operation ' .. tostring(op))
"""
