-- The shared API budget of one app: a GCRA schedule with burst 1, role
-- priority and a shared adaptive rate, all in one hash (KEYS[1]) so that one
-- round trip decides a grant. Times are microseconds of the server's clock.
--
-- Hash fields:
--   tat   theoretical arrival time: the earliest time of the next grant
--   rtat  the same for the replay cap
--   live  until when "live is waiting" holds (replay takes are refused)
--   rate  the shared rate (calls/s) as of rt; recovers linearly to maxRate
--   rt    the time rate was computed
--   dec   the time of the last decrease
--
-- ARGV: 1 op (take|throttle|resume|peek), 2 role (live|replay), 3 maxRate,
-- 4 minRate, 5 decrease factor, 6 recovery in calls/s per second, 7 replay
-- cap in calls/s (0 = none), 8 live hold (us), 9 key ttl (ms), 10 resume
-- hold (us).
--
-- Returns {granted, wait_us, rate, slot_us, now_us}: for a grant, wait_us is
-- the time until the reserved slot slot_us; otherwise the time after which
-- a retry may succeed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local op = ARGV[1]
local role = ARGV[2]
local maxRate = tonumber(ARGV[3])
local minRate = tonumber(ARGV[4])
local factor = tonumber(ARGV[5])
local recover = tonumber(ARGV[6])
local cap = tonumber(ARGV[7])
local liveHold = tonumber(ARGV[8])
local ttl = tonumber(ARGV[9])
local resumeHold = tonumber(ARGV[10])

local h = redis.call('HMGET', KEYS[1], 'tat', 'rtat', 'live', 'rate', 'rt', 'dec')
local tat = tonumber(h[1]) or 0
local rtat = tonumber(h[2]) or 0
local live = tonumber(h[3]) or 0
local rate = tonumber(h[4]) or maxRate
local rt = tonumber(h[5]) or now
local dec = tonumber(h[6]) or 0

-- Linear recovery since rt, never above this caller's maximum.
if rate < maxRate and now > rt then
  rate = math.min(maxRate, rate + recover * (now - rt) / 1000000)
end
if rate > maxRate then
  rate = maxRate
end
if now > rt then
  rt = now
end

local function fmt(x)
  return string.format('%.17g', x)
end

local granted, wait, slot = 0, 0, 0

if op == 'take' then
  local T = 1000000 / rate
  local s = math.max(tat, now)
  if role == 'live' then
    -- Live may reserve a slot up to two intervals ahead.
    if s - now <= 2 * T then
      granted, slot, wait = 1, s, s - now
      tat = s + T
    else
      wait = s - now - 2 * T
      live = math.max(live, s + liveHold)
    end
  else
    -- Replay reserves at most one interval ahead, so a live take asking in
    -- time (two intervals) reserves first, and never while live waits.
    local look = T
    if cap > 0 then
      s = math.max(s, rtat)
    end
    if live > now then
      wait = math.max(live - now, s - now - look)
    elseif s - now <= look then
      granted, slot, wait = 1, s, s - now
      tat = s + T
      if cap > 0 then
        rtat = s + 1000000 / cap
      end
    else
      wait = s - now - look
    end
  end
elseif op == 'throttle' then
  if dec == 0 or now - dec >= 1000000 then
    rate = math.max(minRate, rate * factor)
    dec = now
    granted = 1
  end
elseif op == 'resume' then
  -- After an outage no process may use the shared schedule until every
  -- process has left its local fallback and its last local grant is older
  -- than one second.
  tat = math.max(tat, now + resumeHold)
  granted = 1
end

if op ~= 'peek' then
  redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'rtat', fmt(rtat), 'live', fmt(live),
    'rate', fmt(rate), 'rt', fmt(rt), 'dec', fmt(dec))
  redis.call('PEXPIRE', KEYS[1], ttl)
end

return {granted, math.ceil(wait), fmt(rate), math.floor(slot), now}
