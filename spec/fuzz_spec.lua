-- Calls every function and method of the module with random arguments: each
-- call must work or raise a Lua error; none may crash, and any that blocks
-- must end when its thread is cancelled.
local threading = require("threading")

local CALLS = math.floor(1000 * tonumber(os.getenv("STRESS_SCALE") or "1"))
local PATIENCE = 0.1 -- seconds a batch may go without finishing before it is cancelled

-- Runs in a thread of its own: makes calls first..last, storing the number
-- and the name of the call under way in `progress` and `current`, and any
-- thread a call returned in `spawned`.
local function fuzz_batch(seed, first, last, progress, spawned, current, made)
  local th = require("threading")
  local unpack = table.unpack or unpack

  local function try(f, ...)
    local ok, v = pcall(f, ...)
    return ok and v or nil
  end

  -- Objects of every type the module has, built with valid arguments.
  local objects = {}
  local builders = {
    Lock = function() return th.Lock() end,
    RLock = function() return th.RLock() end,
    Value = function() return th.Value(1) end,
    Condition = function() return th.Condition() end,
    Semaphore = function() return th.Semaphore(2) end,
    BoundedSemaphore = function() return th.BoundedSemaphore(2) end,
    Event = function() return th.Event() end,
    Barrier = function() return th.Barrier(2, nil, 0.05) end,
    Queue = function() return th.Queue(4) end,
    LifoQueue = function() return th.LifoQueue(4) end,
    PriorityQueue = function() return th.PriorityQueue(4) end,
    SimpleQueue = function() return th.SimpleQueue() end,
    Table = function() return th.Table({ 1, a = 2 }) end,
    Thread = function() return th.Thread(function() return 1 end) end,
  }
  local names = {}
  for name in pairs(builders) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if th[name] then objects[#objects + 1] = try(builders[name]) end
  end

  made:set(objects)

  local zero = 0.0
  local values = {
    true, false, 0, -1, 1, 2, 0.5, -zero, 0 / 0, 1 / 0, -1 / 0, 2 ^ 53, -2 ^ 63, 1e300,
    "", "x", "timeout", ("long"):rep(64), "\0", {}, { 1, 2, 3 }, { n = -1 }, { target = print },
    function() return 1 end, function() error("boom") end, print, string.rep,
    coroutine.create(function() end), io.stdout, th,
  }
  for _, o in ipairs(objects) do values[#values + 1] = o end

  -- Every module function and every method of every object.
  local targets = {}
  local fnames = {}
  for k, v in pairs(th) do
    if type(v) == "function" and k:sub(1, 1) ~= "_" then fnames[#fnames + 1] = k end
  end
  table.sort(fnames)
  for _, k in ipairs(fnames) do
    targets[#targets + 1] = { name = "threading." .. k, fn = th[k] }
  end
  for _, o in ipairs(objects) do
    local mt = getmetatable(o)
    local methods = type(mt) == "table" and rawget(mt, "methods")
    if type(methods) == "table" then
      local ms = {}
      for k, v in pairs(methods) do
        if type(v) == "function" then ms[#ms + 1] = k end
      end
      table.sort(ms)
      for _, m in ipairs(ms) do
        targets[#targets + 1] = { name = tostring(mt.__name) .. ":" .. m, fn = methods[m], self = o }
      end
    end
  end

  local kept = {}
  for i = first, last do
    progress:set(i)
    math.randomseed(seed * 7919 + i)
    local target = targets[math.random(#targets)]
    current:set(target.name)
    local args, n = {}, math.random(0, 4)
    if target.self and math.random() < 0.9 then
      args[1] = target.self
    else
      args[1] = values[math.random(#values)]
    end
    for a = 2, n do
      args[a] = math.random() < 0.15 and nil or values[math.random(#values)]
    end
    local res = { pcall(target.fn, unpack(args, 1, math.max(n, 1))) }
    if not res[1] and res[2] == "cancelled" then
      break   -- the watchdog cancelled this batch: a fresh one goes on
    end
    for r = 2, #res do
      local v = res[r]
      if type(v) == "userdata" and tostring(v):find("^threading%.Thread") then
        kept[#kept + 1] = v
        spawned:set(kept)
      elseif type(v) == "table" and rawget(v, "thread") ~= nil then   -- a Timer
        kept[#kept + 1] = rawget(v, "thread")
        spawned:set(kept)
      end
    end
  end
  return last - first + 1
end

-- Empty the containers a batch made: random calls store objects in one
-- another (a Value holding itself, two queues holding each other), and
-- reference-counted objects in a cycle are never freed (doc/threads.md).
local function break_cycles(objects)
  for _, o in ipairs(objects) do
    local kind = tostring(o):match("^threading%.(%a+)")
    if kind == "Value" then
      o:set(nil)
    elseif kind == "Table" then
      local keys = {}
      for k in threading.pairs(o) do keys[#keys + 1] = k end
      for _, k in ipairs(keys) do o[k] = nil end
    elseif kind and kind:find("Queue$") then
      while o:get_nowait() ~= nil do end
    elseif kind == "Thread" and o.status == "new" then
      o:cancel()          -- it never runs, and frees its arguments
      o:start()
      o:join(10)
    end
  end
end

describe("the public API under random arguments", function()
  it("never crashes, and every call returns, raises, or ends when cancelled", function()
    local seed = tonumber(os.getenv("STRESS_SEED") or "12345")
    local first, batches, cancelled = 1, 0, 0
    local leftovers = {}
    while first <= CALLS do
      local progress, spawned, current = threading.Value(first), threading.Value({}), threading.Value()
      local made = threading.Value({})
      local t = threading.Thread{ daemon = true, target = fuzz_batch,
                                  args = { seed, first, CALLS, progress, spawned, current, made } }:start()
      -- wait while calls make progress; a call that stays blocked for
      -- PATIENCE seconds gets its thread cancelled
      local seen = first - 1
      local ok, err = t:join(PATIENCE)
      while ok == nil and progress:get() ~= seen do
        seen = progress:get()
        ok, err = t:join(PATIENCE)
      end
      if ok == nil then
        -- a call blocks (acquiring a held lock, waiting on an empty queue...)
        t:cancel()
        local ended = t:join(10)
        assert(ended ~= nil, "call " .. progress:get() .. " did not end when its thread was cancelled")
        cancelled = cancelled + 1
        if os.getenv("FUZZ_DEBUG") then print("cancelled at call", progress:get(), current:get()) end
      else
        assert(ok or err == "cancelled", err)
      end
      for _, s in ipairs(spawned:get()) do leftovers[#leftovers + 1] = s end
      break_cycles(made:get())
      first = progress:get() + 1
      batches = batches + 1
    end
    local ended = 0
    for _, s in ipairs(leftovers) do
      -- current_thread() and main_thread() return threads that cannot be
      -- cancelled or joined; every thread the calls started must end
      if pcall(s.cancel, s) and s.status ~= "new" then
        assert(s:join(10) ~= nil, "a thread started by a fuzzed call did not end when cancelled")
        ended = ended + 1
      end
    end
    assert.is_true(batches >= 1)
    print(("\nfuzz: %d calls, %d batches, %d blocked calls cancelled, %d spawned threads ended")
      :format(CALLS, batches, cancelled, ended))
  end)
end)
